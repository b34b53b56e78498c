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
from datetime import datetime
from pathlib import Path

from asyncqueue.errors import DatabaseBusyError, DatabaseError, DatabaseOpenError
from asyncqueue.storage.base import WORKER_LIVENESS_MULTIPLE
from asyncqueue.storage.maintenance import (
    TIME_COLUMNS,
    BackupResult,
    CheckpointResult,
    RestoreResult,
    VacuumResult,
    WorkerInfo,
    time_problem,
    times_out_of_range_sql,
)
from asyncqueue.storage.sqlite_connection import first, is_busy, rows
from asyncqueue.storage.sqlite_sql import APPLICATION_ID, SCHEMA_VERSION
from asyncqueue.timebounds import (
    MAX_TIMESTAMP,
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


#: table -> the statement finding its rows out of range: one pass over the table, which the
#: integrity check ``db check`` runs first reads in full anyway. Text stored by hand sorts
#: after every number in SQLite, so it fails BETWEEN too.
TIMES_OUT_OF_RANGE = {
    table: times_out_of_range_sql(table, columns, ":min", ":max")
    for table, (_, columns) in TIME_COLUMNS.items()
}

__all__ = [
    "BackupResult",
    "CheckpointResult",
    "RestoreResult",
    "VacuumResult",
    "WorkerInfo",
    "analyze",
    "backup",
    "checkpoint",
    "failed_ids_reader",
    "integrity_problems",
    "read_counts_by_type",
    "restore",
    "vacuum",
    "workers_reader",
]

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
                problems.append(time_problem(table, found))
    return problems


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
