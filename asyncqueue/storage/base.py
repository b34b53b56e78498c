"""The storage interface in domain verbs.

``JobQueue`` and ``QueueWorker`` talk only to this. Decisions (validation, retry maths,
which status a failure leads to) are made by the caller; storage applies them atomically.
Every change to a claimed job is fenced by its lease: it applies only while the job is
still ``processing`` under the same ``lease_token``, and reports whether it did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from asyncqueue.job import ClaimedJob, Job, JobId, JobStatus, QueueStats
from asyncqueue.metrics import MetricsRows
from asyncqueue.storage.maintenance import StorageMaintenance
from asyncqueue.validation import NewJob

Strategy = Literal["priority", "fifo", "lifo"]

#: A worker is alive while its last heartbeat is younger than this many heartbeat intervals;
#: older rows are pruned.
WORKER_LIVENESS_MULTIPLE = 3


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof that a worker holds a claimed job."""

    job_id: int
    token: str


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Claim up to ``limit`` due jobs for ``worker_id``, in ``strategy`` order."""

    worker_id: str
    limit: int
    strategy: Strategy
    job_types: tuple[str, ...] | None
    now: float
    lease_expires_at: float


#: One transition of one job, as recorded in the history and announced to subscribers:
#: (job_id, event, status after, at, worker_id, job_type, error, run_at, duration_seconds).
#: The duration of the attempt, when the worker measured it, is announced but not stored.
EventRow = tuple[
    int, str, str, float, str | None, str | None, str | None, float | None, float | None
]


class EventSink(Protocol):
    """Where a backend announces committed transitions (the queue's event hub)."""

    @property
    def has_subscribers(self) -> bool:
        """Whether anyone listens; events are only built then."""
        ...

    def publish(self, rows: Sequence[EventRow]) -> None:
        """Announce the rows to every subscriber."""
        ...


# Not frozen: one is made per job, and a frozen dataclass takes 0.5 us more to build.
@dataclass(slots=True)
class FinishedJob:
    """The outcome of one held job: its next status and, for a retry, when it runs.

    ``result_json`` is what a completed attempt produced, as JSON text (None: nothing).
    """

    job_id: int
    token: str
    status: JobStatus
    run_at: float | None = None
    error: str | None = None
    job_type: str | None = None
    duration: float | None = None
    result_json: str | None = None

    @property
    def counts_retry(self) -> bool:
        """Whether this outcome spends one of the job's retries."""
        return self.status is JobStatus.RETRY_SCHEDULED


@dataclass(frozen=True, slots=True)
class RecoveredJob:
    """A job taken back from a worker whose lease expired."""

    id: int
    job_type: str
    worker_id: str | None
    status: JobStatus


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A worker's row in the workers table."""

    worker_id: str
    host: str
    pid: int
    started_at: float
    last_heartbeat: float
    heartbeat_interval: float
    jobs_processed: int = 0
    jobs_failed: int = 0


class JobStorage(StorageMaintenance, Protocol):
    """What a queue backend provides. All times are UTC epoch seconds."""

    #: Receives, in the event loop after each commit, the transitions it made.
    event_sink: EventSink | None

    async def open(self) -> None:
        """Connect, create or migrate the schema. Idempotent."""
        ...

    async def exists(self) -> bool:
        """Whether the queue's database (SQLite file, PostgreSQL schema) exists, looked up
        without creating it."""
        ...

    async def close(self) -> None:
        """Finish pending writes and disconnect. Idempotent."""
        ...

    async def insert_jobs(self, jobs: Sequence[NewJob], now: float) -> list[JobId]:
        """Insert jobs in one transaction; an active duplicate yields its id, uncreated."""
        ...

    async def insert_job(self, job: NewJob, now: float) -> JobId:
        """Insert one job (the common case of ``insert_jobs``, with less in the way)."""
        ...

    async def insert_jobs_in(
        self, connection: Any, jobs: Sequence[NewJob], now: float
    ) -> list[JobId]:
        """Insert on the caller's own connection, in its transaction (PostgreSQL only).

        Raises:
            ConfigurationError: the backend has no such connections (SQLite).
        """
        ...

    async def finish_and_claim(
        self,
        finished: Sequence[FinishedJob],
        claim: ClaimRequest | None,
        now: float,
        worker_id: str | None = None,
        brief: bool = False,
    ) -> tuple[set[int], list[ClaimedJob]]:
        """Apply outcomes of held jobs, then claim more, in one transaction.

        ``brief`` marks a small exchange that the backend may make on the event loop's own
        thread. Returns the ids whose outcome applied (the others had lost their lease) and
        the newly claimed jobs.
        """
        ...

    async def earliest_ready(self, job_types: tuple[str, ...] | None) -> float | None:
        """The earliest due time of a pending or retry-scheduled job of these types (all
        types for None), read without locking or writing anything; None if there is none."""
        ...

    async def renew_leases(
        self, leases: Sequence[Lease], expires_at: float, now: float
    ) -> set[int]:
        """Extend held leases; return the ids whose lease is still held."""
        ...

    async def recover_stale_jobs(self, now: float) -> list[RecoveredJob]:
        """Take back every job whose lease expired before ``now``."""
        ...

    async def cancel_job(self, job_id: int, now: float) -> bool:
        """Cancel a pending or retry-scheduled job."""
        ...

    async def retry_job(self, job_id: int, now: float) -> bool:
        """Move a failed or cancelled job back to pending, unless an active duplicate exists."""
        ...

    async def delete_finished_jobs(self, finished_before: float) -> int:
        """Delete completed and cancelled jobs finished before the given time."""
        ...

    def watch_changes(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` when another connection may have committed; return a stopper."""
        ...

    async def get_job_history(self, job_id: int) -> list[EventRow]:
        """Every recorded transition of one job, oldest first."""
        ...

    async def read_metrics(self, now: float, window: float) -> MetricsRows:
        """The raw figures ``get_metrics`` is built from, read in one snapshot."""
        ...

    async def get_job(self, job_id: int) -> Job | None:
        """Read one job."""
        ...

    async def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """Read several jobs in one query, in any order; unknown ids are left out."""
        ...

    async def list_jobs(
        self,
        statuses: Sequence[JobStatus] | None,
        job_type: str | None,
        limit: int,
        *,
        target_id: str | None = None,
        error_message: str | None = None,
        before_id: int | None = None,
    ) -> list[Job]:
        """Read jobs, newest first; ``before_id`` is a keyset cursor (ids below it only).

        ``error_message`` matches exactly, a job without one matching ``""``.
        """
        ...

    async def failed_groups(self, limit: int) -> list[tuple[str, str, int, int, float | None]]:
        """Failed jobs grouped by error and type, largest group first: ``(error_message,
        job_type, count, newest id, newest completed_at)``, a missing error as ``""``."""
        ...

    async def finished_by_bucket(
        self, since: float, bucket_seconds: float
    ) -> list[tuple[int, int, int]]:
        """Jobs that ended since ``since``, per bucket: ``(bucket index, completed,
        failed)``, buckets without any left out."""
        ...

    async def queue_stats(self, now: float) -> QueueStats:
        """Count jobs by status, and workers alive at ``now`` (see ``WORKER_LIVENESS_MULTIPLE``)."""
        ...

    async def heartbeat_worker(self, worker: WorkerRecord) -> None:
        """Refresh a worker's heartbeat and counters (re-inserting a pruned row)."""
        ...

    async def unregister_worker(self, worker_id: str) -> None:
        """Delete a worker's row."""
        ...

    async def prune_workers(self, now: float) -> int:
        """Delete rows of workers whose heartbeat is older than their liveness window."""
        ...
