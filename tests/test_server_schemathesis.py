"""No client input makes the API answer with a server error: schemathesis against its OpenAPI.

Each operation gets a few generated requests (valid and invalid bodies, parameters and
paths), sent in process to the app inside its lifespan, as an admin so that every route
runs past authentication.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from asyncqueue import JobQueue
from asyncqueue.server import ApiTokens, create_app

ADMIN = {"Authorization": "Bearer schemathesis-admin"}
#: Generated requests per operation, valid and invalid each: enough to reach each body's edge cases, and the module
#: stays within a few seconds.
EXAMPLES_PER_OPERATION = 10
#: Long polls shortened to this, so that a generated 30 s wait does not stall the run.
MAX_WAIT_SECONDS = 0.01
#: Tasks in the queue before the run (ids 1..TASKS); the first half held by HOLDER.
TASKS = 40
HOLDER = "schemathesis-worker"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    db = Path(tmp_path_factory.mktemp("schemathesis")) / "queue.db"
    asyncio.run(_fill(db))
    app = create_app(db=db, tokens=ApiTokens.admin("schemathesis-admin"))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    # schemathesis keeps the app's lifespan running for the process; end it (closing the
    # queue) once this module is done.
    asgi.shutdown_lifespans()


async def _fill(db: Path) -> None:
    async with JobQueue(db) as queue:
        await queue.enqueue_many([{"job_type": "t", "target_id": f"t{i}"} for i in range(TASKS)])
        await queue.claim(HOLDER, limit=TASKS // 2)


def _existing_task(case: Any) -> None:
    """Point a per-task request at a task that exists, and half of them at its holder: a
    random id would be unknown (404) and a random worker no holder (409), and the code past
    those answers would never run."""
    task_id = (case.path_parameters or {}).get("task_id")
    if not isinstance(task_id, int) or isinstance(task_id, bool) or task_id < 0:
        return
    case.path_parameters["task_id"] = 1 + task_id % TASKS
    body = case.body
    if task_id % 2 and isinstance(body, dict) and isinstance(body.get("worker_id"), str):
        body["worker_id"] = HOLDER
        body.pop("lease_token", None)


def _short_waits(body: Any) -> None:
    if isinstance(body, dict):
        for key in ("wait", "timeout"):
            value = body.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                body[key] = min(value, MAX_WAIT_SECONDS)


def test_no_input_makes_a_server_error(api_schema: Any) -> None:
    # Operations one after another in one test (schemathesis's own pytest plugin does not
    # work with this pytest): a failure names the operation and the request.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 19
    per_task: Counter[int] = Counter()
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            _short_waits(case.body)
            _existing_task(case)
            response = case.call_and_validate(headers=ADMIN, checks=[not_a_server_error])
            if "task_id" in (case.path_parameters or {}):
                per_task[response.status_code] += 1

        try:
            check()
        except Unsatisfiable:
            # Nothing to get wrong in this operation's request (GET /api/stats, say).
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    # The per-task routes ran past the lookup of the task: held ones applied (200), and
    # reports from others were fenced (409).
    assert per_task[200], per_task
    assert per_task[409], per_task
