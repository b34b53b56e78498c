"""Request bodies of the HTTP API, as pydantic models.

Lenient where it costs nothing (unknown fields are ignored, so older and newer clients keep
working), strict where a wrong value would slip through: a number field refuses ``true`` and
``"3"``, a float field refuses NaN and infinity, text refuses NUL and lone surrogates (SQLite
could not store them). Bounds keep every value inside what the database and ``datetime`` can
hold, so no input reaches the queue that it would fail on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
)

#: Largest id or counter SQLite stores as an integer.
MAX_INT64 = 2**63 - 1
#: Latest time a job may be scheduled for (a datetime must hold it): the year 9000.
MAX_TIMESTAMP = 221_845_392_000.0
#: Longest delay accepted, in seconds (100 years).
MAX_DELAY_SECONDS = 100 * 365 * 86400.0


def _storable_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _storable_time(value: datetime) -> datetime:
    aware = value.tzinfo is not None and value.utcoffset() is not None
    if aware and not 0 <= value.timestamp() <= MAX_TIMESTAMP:
        raise ValueError("must be between 1970 and 9000")
    return value


Text = Annotated[str, AfterValidator(_storable_text)]
#: A worker's name, as workers and the workers table hold it.
WorkerId = Annotated[Text, Field(min_length=1, max_length=255)]
#: A job type as the claim filters name it (the queue validates it further).
TaskType = Annotated[Text, Field(min_length=1, max_length=255)]
LeaseToken = Annotated[Text, Field(max_length=255)]
TaskIdField = Annotated[StrictInt, Field(ge=0, le=MAX_INT64)]
Seconds = Annotated[StrictFloat, Field(allow_inf_nan=False)]


class _Body(BaseModel):
    # Unknown fields are ignored: a seed client may send more than this API reads.
    model_config = ConfigDict(extra="ignore")


class ClaimBody(_Body):
    """``POST /api/tasks/claim``: claim one task, or up to ``limit``."""

    worker_id: WorkerId
    task_types: list[TaskType] | None = Field(
        default=None, description="Claim only these task types (null or empty: any type)."
    )
    limit: Annotated[StrictInt, Field(ge=1, le=100)] | None = Field(
        default=None, description='Claim up to this many; the answer is then {"tasks": [...]}.'
    )
    wait: Annotated[Seconds, Field(ge=0, le=30)] | None = Field(
        default=None, description="Long poll: wait up to this many seconds for a task."
    )
    lease_seconds: Annotated[Seconds, Field(ge=1, le=86400)] | None = Field(
        default=None, description="Lease length of the claimed tasks (default: the queue's)."
    )


class CompleteBody(_Body):
    """``POST /api/tasks/{id}/complete``."""

    worker_id: WorkerId
    result: Any = Field(default=None, description="Any JSON value, kept as the task's result.")
    lease_token: LeaseToken | None = None


class FailBody(_Body):
    """``POST /api/tasks/{id}/fail``."""

    worker_id: WorkerId
    error: Text
    lease_token: LeaseToken | None = None


class HeartbeatBody(_Body):
    """``POST /api/tasks/{id}/heartbeat``: extend the lease of a held task."""

    worker_id: WorkerId
    lease_token: LeaseToken | None = None
    lease_seconds: Annotated[Seconds, Field(ge=1, le=86400)] | None = Field(
        default=None, description="New lease length from now (default: the queue's)."
    )


class EnqueueBody(_Body):
    """``POST /api/tasks``: add a task (the queue validates the values)."""

    type: Text
    target_id: Text
    params: dict[str, Any] | None = None
    priority: StrictInt | None = None
    max_retries: StrictInt | None = None
    delay: Annotated[Seconds, Field(ge=0, le=MAX_DELAY_SECONDS)] | None = None
    run_at: Annotated[datetime, AfterValidator(_storable_time)] | None = None


class FinishedItem(_Body):
    """One outcome in an exchange, fenced by its lease token."""

    id: TaskIdField
    lease_token: LeaseToken
    outcome: Literal["completed", "failed", "released"]
    result: Any = None
    error: Text | None = None


class ClaimSpec(_Body):
    """The claim part of an exchange."""

    limit: Annotated[StrictInt, Field(ge=0, le=1000)]
    task_types: list[TaskType] | None = None
    strategy: Literal["priority", "fifo", "lifo"] = "priority"


class LeaseItem(_Body):
    """A lease a worker holds."""

    id: TaskIdField
    lease_token: LeaseToken


class ExchangeBody(_Body):
    """``POST /api/tasks/exchange``: report outcomes and claim more, in one transaction.

    ``holding``, sent by a client retrying after a lost answer, lists every lease it holds;
    the worker's other running tasks go back to pending without spending an attempt.
    """

    worker_id: WorkerId
    finished: list[FinishedItem] = Field(default_factory=list, max_length=10_000)
    claim: ClaimSpec | None = None
    holding: list[LeaseItem] | None = Field(default=None, max_length=100_000)

    @field_validator("finished")
    @classmethod
    def _one_outcome_per_task(cls, finished: list[FinishedItem]) -> list[FinishedItem]:
        # Two outcomes for one task cannot both apply, and ``applied`` could not say which.
        if len({item.id for item in finished}) != len(finished):
            raise ValueError("must name each task at most once")
        return finished


class RenewBody(_Body):
    """``POST /api/tasks/renew``: extend several leases."""

    worker_id: WorkerId
    leases: list[LeaseItem] = Field(max_length=10_000)


class WaitBody(_Body):
    """``POST /api/tasks/wait``: wait for an enqueue notification newer than ``since``."""

    task_types: list[TaskType] | None = None
    since: Annotated[StrictInt, Field(ge=0, le=MAX_INT64)]
    timeout: Annotated[Seconds, Field(ge=0, le=30)] = 0.0


class WorkerHeartbeatBody(_Body):
    """``POST /api/workers/heartbeat``: register or refresh a remote worker."""

    worker_id: WorkerId
    host: Annotated[Text, Field(max_length=255)]
    pid: Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]
    started_at: Annotated[Seconds, Field(ge=0, le=MAX_TIMESTAMP)]
    heartbeat_interval: Annotated[Seconds, Field(gt=0, le=86400)]
    jobs_processed: Annotated[StrictInt, Field(ge=0, le=MAX_INT64)] = 0
    jobs_failed: Annotated[StrictInt, Field(ge=0, le=MAX_INT64)] = 0
