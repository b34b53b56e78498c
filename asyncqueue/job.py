"""Jobs as the public API sees them: statuses, the job record, the id enqueue returns, stats.

Pure values, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import repeat
from typing import Any, Self

from asyncqueue.timebounds import stored_datetime


class JobStatus(StrEnum):
    """Where a job is in its life. Members compare equal to their string values."""

    #: Waiting to run; includes delayed jobs whose ``run_at`` is still in the future.
    PENDING = "pending"
    #: Claimed by a worker that holds its lease.
    PROCESSING = "processing"
    #: A failed attempt waiting for its backoff to pass before it runs again.
    RETRY_SCHEDULED = "retry_scheduled"
    #: ``process_job`` returned True.
    COMPLETED = "completed"
    #: Every attempt failed: the dead letter. Stays until retried or removed.
    FAILED = "failed"
    #: Cancelled before it ran.
    CANCELLED = "cancelled"


#: Statuses a worker may claim from (once ``run_at`` has come).
READY_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.PENDING, JobStatus.RETRY_SCHEDULED})
#: Statuses that hold the ``(job_type, target_id)`` pair against duplicates.
ACTIVE_STATUSES: frozenset[JobStatus] = READY_STATUSES | {JobStatus.PROCESSING}
#: Statuses a job never leaves on its own.
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
)


class JobId(int):
    """The id ``enqueue`` returns: a plain ``int`` that also says whether a job was created.

    ``created`` is False when an active job with the same ``(job_type, target_id)`` already
    existed and its id was returned instead. It prints, compares, hashes and serialises to
    JSON exactly as the int.
    """

    # A class default, so that an id of a created job is only an int: enqueue_many makes
    # one per job, and setting the attribute on each took a third of a microsecond.
    created: bool = True

    def __new__(cls, value: int, created: bool = True) -> Self:
        """Make the id ``value``; ``created`` says whether enqueue inserted a new job."""
        self = super().__new__(cls, value)
        if not created:
            self.created = False
        return self

    @classmethod
    def created_range(cls, start: int, stop: int) -> list[JobId]:
        """The ids ``start`` to ``stop - 1``, all of created jobs."""
        return cls.created_all(range(start, stop))

    @classmethod
    def created_all(cls, ids: Sequence[int]) -> list[JobId]:
        """``ids``, all of created jobs (a third of the time of calling the class on each)."""
        return list(map(int.__new__, repeat(cls, len(ids)), ids))

    def __repr__(self) -> str:
        return int.__repr__(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (JobId, (int(self), self.created))


def _as_datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else stored_datetime(timestamp)


@dataclass(frozen=True, slots=True)
class Job:
    """A job record as stored. Fields are attributes; ``job['field']`` also works.

    Times are timezone-aware UTC datetimes (None where not reached yet). A time stored
    outside 0001-01-01..9999-12-31T23:59:59Z (by hand, or by an older version) reads back
    clamped to that range, and one that is not a number as the epoch: see
    ``asyncqueue.timebounds``. ``result`` is what the completed attempt produced (a
    :class:`JobResult` value, or a remote worker's result); ``lease_token`` is the token of
    the current or last attempt's lease.
    """

    id: int
    job_type: str
    target_id: str
    status: JobStatus
    priority: int
    retry_count: int
    max_retries: int
    attempts: int
    metadata: dict[str, Any]
    error_message: str | None
    worker_id: str | None
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    lease_expires_at: datetime | None = field(default=None, repr=False)
    result: Any = field(default=None, repr=False)
    lease_token: str | None = field(default=None, repr=False)

    def __getitem__(self, key: str) -> Any:
        """Seed-style access: ``job['error_message']``."""
        if key not in _JOB_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get``."""
        return getattr(self, key) if key in _JOB_FIELDS else default

    def keys(self) -> list[str]:
        """The field names, so ``dict(job)`` works."""
        return list(_JOB_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: times as ISO 8601 strings, status as its string."""
        out: dict[str, Any] = {}
        for name in _JOB_FIELDS:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, JobStatus):
                value = value.value
            out[name] = value
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        """Build a Job from a storage row whose times are epoch seconds."""
        import json

        return cls(
            id=row["id"],
            job_type=row["job_type"],
            target_id=row["target_id"],
            status=JobStatus(row["status"]),
            priority=row["priority"],
            retry_count=row["retry_count"],
            max_retries=row["max_retries"],
            attempts=row["attempts"],
            metadata=json.loads(row["metadata"]),
            error_message=row["error_message"],
            worker_id=row["worker_id"],
            created_at=_as_datetime(row["created_at"]),  # type: ignore[arg-type]
            run_at=_as_datetime(row["run_at"]),  # type: ignore[arg-type]
            started_at=_as_datetime(row["started_at"]),
            completed_at=_as_datetime(row["completed_at"]),
            updated_at=_as_datetime(row["updated_at"]),  # type: ignore[arg-type]
            lease_expires_at=_as_datetime(row["lease_expires_at"]),
            result=None if row["result"] is None else json.loads(row["result"]),
            lease_token=row["lease_token"],
        )


_JOB_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Job))


@dataclass(frozen=True, slots=True)
class JobResult:
    """Return ``JobResult(value)`` from ``process_job`` to complete the job and keep ``value``.

    ``value`` is any JSON value (dict, list, str, number, bool or None), at most the queue's
    ``max_metadata_bytes`` as JSON; it is stored with the job and read back as
    ``job.result``. Returning plain ``True`` completes a job without a result. A value that
    cannot be stored makes the attempt fail with the reason as its error.
    """

    value: Any


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker holds while it runs a job: the job's inputs and its lease."""

    id: int
    job_type: str
    target_id: str
    metadata: dict[str, Any]
    priority: int
    retry_count: int
    max_retries: int
    lease_token: str
    worker_id: str | None = None


# A worker builds one ClaimedJob per job, on the path between two of its round trips to the
# database. Setting the slots through their descriptors skips the frozen dataclass's checked
# __setattr__ call per field: 1.6 against 2.7 us a job on the benchmark machine.
_CLAIMED_JOB_SETTERS = tuple(
    getattr(ClaimedJob, f.name).__set__ for f in dataclasses.fields(ClaimedJob)
)


def claimed_job(values: Iterable[Any]) -> ClaimedJob:
    """A :class:`ClaimedJob` from the values of all its fields, in declaration order."""
    job: ClaimedJob = object.__new__(ClaimedJob)
    for set_field, value in zip(_CLAIMED_JOB_SETTERS, values, strict=True):
        set_field(job, value)
    return job


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts of jobs by status and of live workers, read in one snapshot.

    ``pending_jobs`` includes delayed jobs; ``delayed_jobs`` says how many of them are
    not due yet. ``job['pending_jobs']`` style access also works.
    """

    total_jobs: int
    pending_jobs: int
    processing_jobs: int
    retry_scheduled_jobs: int
    completed_jobs: int
    failed_jobs: int
    cancelled_jobs: int
    delayed_jobs: int
    active_workers: int

    def __getitem__(self, key: str) -> int:
        value: int = getattr(self, key)
        return value

    def to_dict(self) -> dict[str, int]:
        """The counts as a dict keyed by field name."""
        return dataclasses.asdict(self)

    def as_status_dict(self) -> dict[str, int]:
        """The counts keyed by status name, as ``get_queue_status()`` returns them."""
        return {
            "pending": self.pending_jobs,
            "processing": self.processing_jobs,
            "retry_scheduled": self.retry_scheduled_jobs,
            "completed": self.completed_jobs,
            "failed": self.failed_jobs,
            "cancelled": self.cancelled_jobs,
            "delayed": self.delayed_jobs,
            "total": self.total_jobs,
            "active_workers": self.active_workers,
        }


@dataclass(frozen=True, slots=True)
class FailedGroup:
    """Failed jobs sharing one error message and job type (``JobQueue.get_failed_groups``).

    Attributes:
        error_message: the error of their last attempt (``""`` for a job without one).
        job_type: their job type.
        count: how many failed jobs are in the group.
        newest_id: the id of the newest of them.
        last_failed_at: when the latest of them failed (UTC), None if unknown.
    """

    error_message: str
    job_type: str
    count: int
    newest_id: int
    last_failed_at: datetime | None
