"""Logging: asyncqueue's events go through the app's structlog pipeline when it has one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from asyncqueue import JobQueue, ManualClock, QueueWorker


class Failing(QueueWorker):
    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        raise RuntimeError("boom")


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    capture = LogCapture()
    structlog.configure(
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    try:
        yield capture
    finally:
        structlog.reset_defaults()


async def test_events_reach_the_pipeline_the_app_configured(
    captured: LogCapture, db_path: Path, clock: ManualClock
) -> None:
    async with JobQueue(db_path, clock=clock) as queue:
        job_id = await queue.enqueue("t", "x", max_retries=0)
        await Failing(queue, worker_id="w").run_until_idle()

    events = [(e["event"], e.get("job_id")) for e in captured.entries]
    assert ("job.enqueued", job_id) in events
    assert ("job.started", job_id) in events
    failed = [e for e in captured.entries if e["event"] == "job.attempt_failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "warning"
    assert failed[0]["job_type"] == "t"


async def test_a_filtered_level_is_not_logged(db_path: Path, clock: ManualClock) -> None:
    capture = LogCapture()
    structlog.configure(
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    try:
        async with JobQueue(db_path, clock=clock) as queue:
            await queue.enqueue("t", "x", max_retries=0)
            await Failing(queue, worker_id="w").run_until_idle()
    finally:
        structlog.reset_defaults()

    assert {e["log_level"] for e in capture.entries} <= {"warning", "error", "critical"}
    assert any(e["event"] == "job.attempt_failed" for e in capture.entries)


@pytest.mark.parametrize(
    "wrapper_class",
    [structlog.make_filtering_bound_logger(logging.DEBUG), structlog.BoundLogger],
    ids=["filtering-at-debug", "generic"],
)
async def test_enqueue_many_logs_each_job_when_debug_is_on(
    db_path: Path, wrapper_class: Any
) -> None:
    """Per-job debug events are skipped only when the logger says it drops them."""
    capture = LogCapture()
    structlog.configure(processors=[capture], wrapper_class=wrapper_class)
    try:
        async with JobQueue(db_path) as queue:
            ids = await queue.enqueue_many(
                [{"job_type": "t", "target_id": str(n % 3)} for n in range(5)]
            )
    finally:
        structlog.reset_defaults()

    events = [
        (e["event"], e["job_id"]) for e in capture.entries if str(e["event"]).startswith("job.")
    ]
    assert events == [
        ("job.enqueued", ids[0]),
        ("job.enqueued", ids[1]),
        ("job.enqueued", ids[2]),
        ("job.duplicate", ids[0]),
        ("job.duplicate", ids[1]),
    ]


def test_the_quiet_default_prints_plain_tracebacks_without_local_variables(
    tmp_path: Path,
) -> None:
    """An app that configured nothing gets warnings on stderr with the traceback, and no
    frame's local variables: they can hold job metadata (rich's renderer prints them)."""
    script = tmp_path / "fails.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            from asyncqueue import JobQueue, QueueWorker

            class Failing(QueueWorker):
                async def process_job(self, job_type, target_id, metadata):
                    api_key = metadata["api_key"]
                    raise RuntimeError("the mail server said no")

            async def main():
                async with JobQueue(sys.argv[1]) as queue:
                    await queue.enqueue("mail", "x", metadata={"api_key": "hunter2"})
                    await Failing(queue).run_until_idle()

            asyncio.run(main())
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "queue.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert result.returncode == 0, result.stderr
    assert "job.attempt_failed" in result.stderr
    assert "RuntimeError: the mail server said no" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "hunter2" not in result.stderr
