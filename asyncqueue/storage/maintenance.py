"""The maintenance interface every backend offers, and the results its verbs return.

``JobQueue``'s maintenance verbs (and the ``db`` commands) call these; each backend does
what fits its database, and a verb that does not apply (a WAL checkpoint on PostgreSQL)
raises :class:`~asyncqueue.errors.UnsupportedOperationError` saying what to use instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from asyncqueue.timebounds import MAX_TIME_TEXT, MIN_TIME_TEXT

#: table -> (what a row of it is, its time columns), for ``db check``.
TIME_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "jobs": (
        "job",
        ("created_at", "run_at", "started_at", "completed_at", "updated_at", "lease_expires_at"),
    ),
    "job_events": ("job event", ("at", "run_at")),
    "workers": ("worker", ("started_at", "last_heartbeat")),
}
#: How many row ids a problem line names at most.
IDS_SHOWN = 10


def times_out_of_range_sql(table: str, columns: Sequence[str], low: str, high: str) -> str:
    """Each row of ``table`` holding a time outside ``low..high``: its id, a flag per column.

    ``low`` and ``high`` are the backend's placeholders; NaN and infinities fail BETWEEN.
    """
    flags = [f"NOT coalesce({column} BETWEEN {low} AND {high}, true)" for column in columns]
    return f"SELECT id, {', '.join(flags)} FROM {table} WHERE {' OR '.join(flags)} ORDER BY id"


def time_problem(
    table: str,
    found: Sequence[Sequence[Any]],
    columns: Sequence[str] | None = None,
) -> str:
    """The ``db check`` line for the rows of ``table`` that :func:`times_out_of_range_sql`
    found: how many, which columns (``TIME_COLUMNS``' unless given), the first ids."""
    noun, known = TIME_COLUMNS[table]
    columns = known if columns is None else columns
    ids = ", ".join(str(row[0]) for row in found[:IDS_SHOWN])
    if len(found) > IDS_SHOWN:
        ids += f" and {len(found) - IDS_SHOWN} more"
    bad = [column for i, column in enumerate(columns, 1) if any(row[i] for row in found)]
    subject = f"1 {noun} has" if len(found) == 1 else f"{len(found)} {noun}s have"
    return (
        f"{subject} a time outside {MIN_TIME_TEXT}..{MAX_TIME_TEXT} ({', '.join(bad)}), "
        f"read back clamped: {table} ids {ids}"
    )


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
