"""Database maintenance on SQLite: integrity check, checkpoint, vacuum, analyze, online
backup and restore, and the reads the command line shows (workers, counts by type).

Maintenance runs on a connection of its own, opened for the call in a worker thread, never
on the queue's writer: VACUUM and a TRUNCATE checkpoint cannot run inside the writer's
transactions, and a backup must not hold up the jobs' writes. Those connections open
existing files only (``mode=rw``/``mode=ro``), so a mistyped path is an error rather than a
new empty database. The reads are functions the queue's read pool runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asyncqueue.errors import DatabaseBusyError, DatabaseError, DatabaseOpenError
from asyncqueue.storage.base import WORKER_LIVENESS_MULTIPLE
from asyncqueue.storage.sqlite_connection import first, is_busy, rows
from asyncqueue.storage.sqlite_sql import APPLICATION_ID, SCHEMA_VERSION
from asyncqueue.timebounds import (
    MAX_TIME_TEXT,
    MAX_TIMESTAMP,
    MIN_TIME_TEXT,
    MIN_TIMESTAMP,
    stored_datetime,
)

# -- statements ------------------------------------------------------------------------

SELECT_WORKERS = f"""
SELECT w.id, w.host, w.pid, w.started_at, w.last_heartbeat, w.heartbeat_interval,
       w.jobs_processed, w.jobs_failed,
       w.last_heartbeat + {WORKER_LIVENESS_MULTIPLE} * w.heartbeat_interval >= :now AS alive,
       (SELECT count(*) FROM jobs WHERE status = 'processing' AND worker_id = w.id) AS running
FROM workers AS w
ORDER BY w.started_at, w.id
"""

# Reads the (status, job_type) index alone, as the counts by status do.
COUNT_BY_TYPE_AND_STATUS = """
SELECT job_type, status, count(*) FROM jobs GROUP BY job_type, status ORDER BY job_type, status
"""

SELECT_FAILED_IDS = "SELECT id FROM jobs WHERE status = 'failed' ORDER BY id"
SELECT_FAILED_IDS_OF_TYPE = (
    "SELECT id FROM jobs WHERE status = 'failed' AND job_type = :job_type ORDER BY id"
)

COUNT_JOBS = "SELECT count(*) FROM jobs"

SELECT_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"


def _times_out_of_range(table: str, key: str, columns: tuple[str, ...]) -> str:
    """Each row of ``table`` holding a time outside :min..:max: its key, a flag per column.

    Text (stored by hand) sorts after every number in SQLite, so it fails BETWEEN too.
    """
    flags = [f"NOT coalesce({column} BETWEEN :min AND :max, 1)" for column in columns]
    return (
        f"SELECT {key}, {', '.join(flags)} FROM {table} WHERE {' OR '.join(flags)} ORDER BY {key}"
    )


#: table -> (what a row of it is, its time columns), for ``db check``.
TIME_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "jobs": (
        "job",
        ("created_at", "run_at", "started_at", "completed_at", "updated_at", "lease_expires_at"),
    ),
    "job_events": ("job event", ("at", "run_at")),
    "workers": ("worker", ("started_at", "last_heartbeat")),
}
#: table -> the statement finding its rows out of range: one pass over the table, which the
#: integrity check ``db check`` runs first reads in full anyway.
TIMES_OUT_OF_RANGE = {
    table: _times_out_of_range(table, "id", columns) for table, (_, columns) in TIME_COLUMNS.items()
}
#: How many row ids a problem line names at most.
_IDS_SHOWN = 10

# -- results ---------------------------------------------------------------------------


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
    """The database's size in bytes (pages times page size) before and after VACUUM."""

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


# -- connections -----------------------------------------------------------------------


def _translate(exc: sqlite3.Error, path: str, busy_timeout: float) -> DatabaseError:
    if is_busy(exc):
        return DatabaseBusyError(
            f"the database stayed locked for {busy_timeout:g}s (busy_timeout): {exc}", path
        )
    return DatabaseError(f"SQLite error: {exc}", path)


@contextlib.contextmanager
def _connection(
    path: str, *, busy_timeout: float, read_only: bool = False
) -> Iterator[sqlite3.Connection]:
    """A connection to an existing database file, in autocommit mode.

    Raises:
        DatabaseOpenError: the file does not exist or cannot be opened.
        DatabaseError: a statement failed (``DatabaseBusyError`` when it stayed locked).
    """
    if not Path(path).is_file():
        raise DatabaseOpenError("no database file there", path)
    uri = f"{Path(path).resolve().as_uri()}?mode={'ro' if read_only else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise DatabaseOpenError(f"cannot open the database: {exc}", path) from exc
    try:
        yield conn
    except sqlite3.Error as exc:
        raise _translate(exc, path, busy_timeout) from exc
    finally:
        conn.close()


def _ownership_problems(conn: sqlite3.Connection) -> list[str]:
    """Why the file is not an asyncqueue database this version can use ([] when it is)."""
    application_id = first(conn, "PRAGMA application_id")[0]
    version = first(conn, "PRAGMA user_version")[0]
    if application_id != APPLICATION_ID:
        found = f"application_id {application_id:#x}, expected {APPLICATION_ID:#x}"
        return [f"not an asyncqueue database ({found})"]
    if not 1 <= version <= SCHEMA_VERSION:
        supported = f"1 to {SCHEMA_VERSION}"
        return [f"schema version {version} is not one this asyncqueue can use ({supported})"]
    return []


@contextlib.contextmanager
def _queue_connection(
    path: str, *, busy_timeout: float, read_only: bool = False
) -> Iterator[sqlite3.Connection]:
    """Like :func:`_connection`, refusing a file that is not an asyncqueue database."""
    with _connection(path, busy_timeout=busy_timeout, read_only=read_only) as conn:
        problems = _ownership_problems(conn)
        if problems:
            raise DatabaseOpenError(problems[0], path)
        yield conn


def _size(conn: sqlite3.Connection) -> tuple[int, int]:
    pages = int(first(conn, "PRAGMA page_count")[0])
    return pages, pages * int(first(conn, "PRAGMA page_size")[0])


def _same_file(a: Path, b: str | Path) -> bool:
    try:
        return a.exists() and Path(b).exists() and os.path.samefile(a, b)
    except OSError:
        return False


# -- maintenance (each runs in a thread of its own) --------------------------------------


def _integrity_problems(path: str, busy_timeout: float) -> list[str]:
    with _connection(path, busy_timeout=busy_timeout, read_only=True) as conn:
        try:
            found = [str(row[0]) for row in rows(conn, "PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            if is_busy(exc):
                raise
            # "file is not a database", "database disk image is malformed": the answer.
            return [str(exc)]
        problems = [line for line in found if line != "ok"] + _ownership_problems(conn)
        return problems or _time_problems(conn)


def _time_problems(conn: sqlite3.Connection) -> list[str]:
    """A line per table with rows holding a time reads can only show clamped."""
    tables = {row[0] for row in rows(conn, SELECT_TABLES)}
    bounds = {"min": MIN_TIMESTAMP, "max": MAX_TIMESTAMP}
    problems = []
    for table, statement in TIMES_OUT_OF_RANGE.items():
        if table in tables:  # job_events came with schema version 2
            found = rows(conn, statement, bounds)
            if found:
                problems.append(_time_problem(table, found))
    return problems


def _time_problem(table: str, found: list[Any]) -> str:
    noun, columns = TIME_COLUMNS[table]
    ids = ", ".join(str(row[0]) for row in found[:_IDS_SHOWN])
    if len(found) > _IDS_SHOWN:
        ids += f" and {len(found) - _IDS_SHOWN} more"
    bad = [column for i, column in enumerate(columns, 1) if any(row[i] for row in found)]
    subject = f"1 {noun} has" if len(found) == 1 else f"{len(found)} {noun}s have"
    return (
        f"{subject} a time outside {MIN_TIME_TEXT}..{MAX_TIME_TEXT} ({', '.join(bad)}), "
        f"read back clamped: {table} ids {ids}"
    )


async def integrity_problems(path: str, busy_timeout: float) -> list[str]:
    """Run ``PRAGMA integrity_check`` and check that the file is an asyncqueue database.

    When both pass, also look for rows holding a time outside the storable range (stored
    by hand or by an older version), which reads show clamped.

    Returns:
        The problems found, one line each; empty when the database is sound.
    """
    return await asyncio.to_thread(_integrity_problems, path, busy_timeout)


def _checkpoint(path: str, busy_timeout: float) -> CheckpointResult:
    with _queue_connection(path, busy_timeout=busy_timeout) as conn:
        busy, wal_frames, checkpointed = first(conn, "PRAGMA wal_checkpoint(TRUNCATE)")
        return CheckpointResult(bool(busy), int(wal_frames), int(checkpointed))


async def checkpoint(path: str, busy_timeout: float) -> CheckpointResult:
    """Copy the whole WAL into the database file and truncate the WAL.

    Waits up to ``busy_timeout`` for writers to finish and readers to move on; if they do
    not, the result says ``busy``.
    """
    return await asyncio.to_thread(_checkpoint, path, busy_timeout)


def _vacuum(path: str, busy_timeout: float) -> VacuumResult:
    with _queue_connection(path, busy_timeout=busy_timeout) as conn:
        _, before = _size(conn)
        conn.execute("VACUUM")
        # In WAL mode the rewritten pages sit in the WAL: fold them in so the file shrinks.
        first(conn, "PRAGMA wal_checkpoint(TRUNCATE)")
        _, after = _size(conn)
        return VacuumResult(before, after)


async def vacuum(path: str, busy_timeout: float) -> VacuumResult:
    """Rebuild the database file without free pages. Holds the write lock while it runs."""
    return await asyncio.to_thread(_vacuum, path, busy_timeout)


def _analyze(path: str, busy_timeout: float) -> None:
    with _queue_connection(path, busy_timeout=busy_timeout) as conn:
        conn.execute("ANALYZE")


async def analyze(path: str, busy_timeout: float) -> None:
    """Gather table and index statistics for SQLite's query planner (``ANALYZE``)."""
    await asyncio.to_thread(_analyze, path, busy_timeout)


def _remove_stale_companions(database: Path) -> None:
    # A WAL or shared-memory file left by the database being replaced would be read as
    # part of the new one.
    for suffix in ("-wal", "-shm", "-journal"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def _write_backup(source: sqlite3.Connection, partial: Path) -> tuple[int, int]:
    target = sqlite3.connect(partial, isolation_level=None)
    try:
        # One step (pages=-1): the whole copy is read in a single read transaction, so it is
        # the snapshot of one moment while workers go on committing to the WAL.
        source.backup(target, pages=-1)
        # A self-contained file: no WAL beside it, and it opens read-only anywhere.
        first(target, "PRAGMA journal_mode = DELETE")
        return _size(target)
    finally:
        target.close()


def _backup(path: str, destination: str, overwrite: bool, busy_timeout: float) -> BackupResult:
    dest = Path(destination)
    if _same_file(dest, path):
        raise DatabaseError(f"the backup destination {dest} is the queue's own file", path)
    if dest.exists() and (not overwrite or not dest.is_file()):
        raise DatabaseError(f"{dest} already exists; choose another path or overwrite it", path)
    if not dest.parent.is_dir():
        raise DatabaseError(f"cannot write the backup: no directory {dest.parent}", path)
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    started = time.monotonic()
    try:
        with _queue_connection(path, busy_timeout=busy_timeout, read_only=True) as source:
            try:
                pages, size = _write_backup(source, partial)
            except sqlite3.Error as exc:
                if is_busy(exc):
                    raise
                raise DatabaseError(f"cannot write the backup {dest}: {exc}", path) from exc
        _remove_stale_companions(dest)
        os.replace(partial, dest)
    except OSError as exc:
        raise DatabaseError(f"cannot write the backup {dest}: {exc}", path) from exc
    finally:
        partial.unlink(missing_ok=True)
        _remove_stale_companions(partial)
    return BackupResult(str(dest), pages, size, time.monotonic() - started)


async def backup(
    path: str, destination: str, *, overwrite: bool, busy_timeout: float
) -> BackupResult:
    """Copy the live database to ``destination`` through SQLite's online backup API.

    The copy is consistent (one read transaction) while workers keep writing, and is
    written to a temporary file renamed into place, so a failed backup leaves nothing
    half-written at ``destination``.

    Raises:
        DatabaseError: ``destination`` exists and ``overwrite`` is false, it is the queue's
            own file, or it cannot be written.
    """
    return await asyncio.to_thread(_backup, path, destination, overwrite, busy_timeout)


def _check_backup(conn: sqlite3.Connection, source: str) -> int:
    problems = _ownership_problems(conn)
    if not problems:
        found = [str(row[0]) for row in rows(conn, "PRAGMA integrity_check")]
        problems = [line for line in found if line != "ok"]
    if problems:
        raise DatabaseError(f"{source} is not a usable asyncqueue backup: {problems[0]}")
    return int(first(conn, "PRAGMA user_version")[0])


def _restore(path: str, source: str, busy_timeout: float) -> RestoreResult:
    if _same_file(Path(source), path):
        raise DatabaseError(f"the backup {source} is the queue's own file", path)
    if not Path(source).is_file():
        raise DatabaseError(f"no backup file at {source}")
    with _connection(source, busy_timeout=busy_timeout, read_only=True) as backup_conn:
        try:
            version = _check_backup(backup_conn, source)
        except sqlite3.DatabaseError as exc:
            if is_busy(exc):
                raise
            raise DatabaseError(f"{source} is not a usable asyncqueue backup: {exc}") from exc
        with _connection(path, busy_timeout=busy_timeout) as queue_conn:
            # Page by page into the live file, through its WAL and locks: other connections
            # see the old content or the new, never a file copied under their feet. The
            # backup API also bumps the schema cookie, so they reload the schema.
            backup_conn.backup(queue_conn, pages=-1)
            with contextlib.suppress(sqlite3.Error):
                first(queue_conn, "PRAGMA wal_checkpoint(TRUNCATE)")
            jobs = int(first(queue_conn, COUNT_JOBS)[0])
    return RestoreResult(source, version, jobs)


async def restore(path: str, source: str, *, busy_timeout: float) -> RestoreResult:
    """Replace the database's content with a backup's, through the online backup API.

    The backup must pass ``PRAGMA integrity_check`` and be an asyncqueue database of a
    schema version this asyncqueue can open (an older one is migrated the next time a
    queue opens the file).

    Raises:
        DatabaseError: the backup is missing, damaged, not an asyncqueue database, or the
            queue's own file.
    """
    return await asyncio.to_thread(_restore, path, source, busy_timeout)


# -- reads (run by the read pool) ----------------------------------------------------------


def _utc(timestamp: float) -> datetime:
    # A time stored out of range (by hand) reads back clamped rather than failing the list.
    return stored_datetime(timestamp)


def workers_reader(now: float) -> Callable[[sqlite3.Connection], list[WorkerInfo]]:
    """A read of every row of the workers table, alive or not as of ``now``."""

    def read(conn: sqlite3.Connection) -> list[WorkerInfo]:
        return [
            WorkerInfo(
                worker_id=r[0],
                host=r[1],
                pid=r[2],
                started_at=_utc(r[3]),
                last_heartbeat=_utc(r[4]),
                heartbeat_interval=r[5],
                jobs_processed=r[6],
                jobs_failed=r[7],
                alive=bool(r[8]),
                running_jobs=r[9],
            )
            for r in rows(conn, SELECT_WORKERS, {"now": now})
        ]

    return read


def read_counts_by_type(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Job counts by job type, then by status (statuses without jobs left out)."""
    counts: dict[str, dict[str, int]] = {}
    for job_type, status, count in rows(conn, COUNT_BY_TYPE_AND_STATUS):
        counts.setdefault(job_type, {})[status] = count
    return counts


def failed_ids_reader(job_type: str | None) -> Callable[[sqlite3.Connection], list[int]]:
    """A read of the ids of every failed job (of ``job_type`` only, if given), oldest first."""

    def read(conn: sqlite3.Connection) -> list[int]:
        if job_type is None:
            return [row[0] for row in rows(conn, SELECT_FAILED_IDS)]
        return [row[0] for row in rows(conn, SELECT_FAILED_IDS_OF_TYPE, {"job_type": job_type})]

    return read
