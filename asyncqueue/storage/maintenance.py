"""The maintenance interface every backend offers, and the results its verbs return.

``JobQueue``'s maintenance verbs (and the ``db`` commands) call these; each backend does
what fits its database, and a verb that does not apply (a WAL checkpoint on PostgreSQL)
raises :class:`~asyncqueue.errors.UnsupportedOperationError` saying what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A row of the workers table, as ``JobQueue.list_workers`` returns it.

    ``alive`` follows the rule ``get_queue_stats`` counts by: the last heartbeat is younger
    than three heartbeat intervals. Dead workers' rows stay until a live worker prunes them.
    Times are timezone-aware UTC datetimes.
    """

    worker_id: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat: datetime
    heartbeat_interval: float
    jobs_processed: int
    jobs_failed: int
    running_jobs: int
    alive: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: times as ISO 8601 strings."""
        return {
            "worker_id": self.worker_id,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
            "last_heartbeat": self.last_heartbeat.isoformat(),
            "heartbeat_interval": self.heartbeat_interval,
            "jobs_processed": self.jobs_processed,
            "jobs_failed": self.jobs_failed,
            "running_jobs": self.running_jobs,
            "alive": self.alive,
        }


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """What ``PRAGMA wal_checkpoint(TRUNCATE)`` reported.

    ``busy`` is True when a reader or writer kept the checkpoint from finishing (the WAL was
    then not truncated); the frame counts are -1 when the file is not in WAL mode.
    """

    busy: bool
    wal_frames: int
    checkpointed_frames: int


@dataclass(frozen=True, slots=True)
class VacuumResult:
    """The database's (on PostgreSQL: the queue's tables') size in bytes before and after."""

    bytes_before: int
    bytes_after: int


@dataclass(frozen=True, slots=True)
class BackupResult:
    """A finished backup: where it is, its size, how long it took."""

    path: str
    pages: int
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """A finished restore: the backup's schema version and how many jobs it held."""

    source: str
    schema_version: int
    jobs: int


class StorageMaintenance(Protocol):
    """Maintenance verbs of a backend: each does what fits its database."""

    async def integrity_problems(self) -> list[str]:
        """Problems found in the queue's database ([] when it is sound)."""
        ...

    async def checkpoint(self) -> CheckpointResult:
        """Fold the write-ahead log into the database (SQLite)."""
        ...

    async def vacuum(self) -> VacuumResult:
        """Reclaim the space of deleted rows."""
        ...

    async def analyze(self) -> None:
        """Refresh the query planner's statistics."""
        ...

    async def backup(self, destination: str, *, overwrite: bool) -> BackupResult:
        """Write a consistent copy of the queue to ``destination``."""
        ...

    async def restore(self, source: str) -> RestoreResult:
        """Replace the queue's content with a backup's."""
        ...

    async def list_workers(self, now: float) -> list[WorkerInfo]:
        """Every row of the workers table, with whether it is alive at ``now``."""
        ...

    async def counts_by_type(self) -> dict[str, dict[str, int]]:
        """Job counts by job type, then by status."""
        ...

    async def failed_job_ids(self, job_type: str | None) -> list[int]:
        """Ids of every failed job (of ``job_type`` only, if given), oldest first."""
        ...
