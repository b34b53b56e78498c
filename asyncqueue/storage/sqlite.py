"""The SQLite backend: the storage verbs as statements run by the writer and the read pool."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from asyncqueue.config import QueueSettings
from asyncqueue.errors import DatabaseOpenError, QueueClosedError, SchemaVersionError
from asyncqueue.job import ClaimedJob, Job, JobId, JobStatus, QueueStats
from asyncqueue.storage import sqlite_sql as sql
from asyncqueue.storage.base import ClaimRequest, Lease, RecoveredJob, WorkerRecord
from asyncqueue.storage.sqlite_connection import ReadPool, SQLiteWriter, connect, run_in_thread
from asyncqueue.validation import NewJob


class SQLiteStorage:
    """Jobs in one SQLite file: one writer connection (group commit) and a read pool."""

    def __init__(self, settings: QueueSettings) -> None:
        self._settings = settings
        self._path = settings.path
        self._writer: SQLiteWriter | None = None
        self._reads: ReadPool | None = None

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the writer, create or migrate the schema, then open the read pool."""
        s = self._settings
        writer_conn = await self._connect(query_only=False)
        try:
            await run_in_thread(writer_conn, self._migrate)
            readers = [await self._connect(query_only=True) for _ in range(s.read_connections)]
        except BaseException:
            await writer_conn.close()
            raise
        self._writer = SQLiteWriter(
            writer_conn, self._path, busy_retries=s.busy_retries, busy_timeout=s.busy_timeout
        )
        self._writer.start()
        self._reads = ReadPool(readers, self._path)
        self._writer_conn = writer_conn

    async def _connect(self, *, query_only: bool) -> aiosqlite.Connection:
        s = self._settings
        try:
            return await connect(
                self._path,
                busy_timeout=s.busy_timeout,
                synchronous=s.synchronous,
                query_only=query_only,
            )
        except sqlite3.Error as exc:
            raise DatabaseOpenError(_open_failure(exc), self._path) from exc

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _migrate_in_transaction(conn, self._path)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DatabaseOpenError(_open_failure(exc), self._path) from exc

    async def close(self) -> None:
        """Commit pending writes and close every connection."""
        writer, reads = self._writer, self._reads
        self._writer = self._reads = None
        if writer is not None:
            await writer.close()
            await self._writer_conn.close()
        if reads is not None:
            await reads.close()

    def _write_side(self) -> SQLiteWriter:
        if self._writer is None:
            raise QueueClosedError(f"the queue at {self._path} is not open")
        return self._writer

    def _read_side(self) -> ReadPool:
        if self._reads is None:
            raise QueueClosedError(f"the queue at {self._path} is not open")
        return self._reads

    # -- writes ------------------------------------------------------------------------

    async def insert_jobs(self, jobs: Sequence[NewJob], now: float) -> list[JobId]:
        """Insert in one savepoint; an active duplicate (also within ``jobs``) yields its id."""

        def insert(conn: sqlite3.Connection) -> list[JobId]:
            ids: list[JobId] = []
            for job in jobs:
                row = conn.execute(
                    sql.INSERT_JOB,
                    (
                        job.job_type,
                        job.target_id,
                        job.priority,
                        job.max_retries,
                        job.metadata_json,
                        now,
                        job.run_at,
                        now,
                    ),
                ).fetchone()
                if row is not None:
                    ids.append(JobId(row[0], True))
                    continue
                existing = conn.execute(sql.SELECT_ACTIVE_ID, (job.job_type, job.target_id))
                ids.append(JobId(existing.fetchone()[0], False))
            return ids

        return await self._write_side().submit(insert)

    async def claim_jobs(self, request: ClaimRequest) -> list[ClaimedJob]:
        """One UPDATE ... RETURNING claims up to ``request.limit`` jobs."""
        statement = sql.CLAIM[(request.strategy, request.job_types is not None)]
        params: dict[str, Any] = {
            "worker_id": request.worker_id,
            "lease_expires_at": request.lease_expires_at,
            "now": request.now,
            "limit": request.limit,
        }
        if request.job_types is not None:
            params["job_types"] = json.dumps(request.job_types)

        def claim(conn: sqlite3.Connection) -> list[ClaimedJob]:
            return [
                ClaimedJob(
                    id=r[0],
                    job_type=r[1],
                    target_id=r[2],
                    metadata=json.loads(r[3]),
                    priority=r[4],
                    retry_count=r[5],
                    max_retries=r[6],
                    lease_token=r[7],
                )
                for r in conn.execute(statement, params).fetchall()
            ]

        claimed = await self._write_side().submit(claim)
        # RETURNING gives no order guarantee; hand jobs out in the strategy's order.
        if request.strategy == "priority":
            claimed.sort(key=lambda j: (j.priority, j.id))
        else:
            claimed.sort(key=lambda j: j.id, reverse=request.strategy == "lifo")
        return claimed

    async def _update_held(self, statement: str, params: dict[str, Any]) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            return conn.execute(statement, params).rowcount == 1

        return await self._write_side().submit(update)

    async def complete_job(self, lease: Lease, now: float) -> bool:
        """Held job -> completed."""
        return await self._update_held(
            sql.COMPLETE_JOB, {"id": lease.job_id, "token": lease.token, "now": now}
        )

    async def reschedule_job(self, lease: Lease, run_at: float, error: str, now: float) -> bool:
        """Held job -> retry_scheduled at ``run_at``."""
        return await self._update_held(
            sql.RESCHEDULE_JOB,
            {
                "id": lease.job_id,
                "token": lease.token,
                "now": now,
                "run_at": run_at,
                "error": error,
            },
        )

    async def fail_job(self, lease: Lease, error: str, now: float) -> bool:
        """Held job -> failed."""
        return await self._update_held(
            sql.FAIL_JOB, {"id": lease.job_id, "token": lease.token, "now": now, "error": error}
        )

    async def release_job(self, lease: Lease, now: float) -> bool:
        """Held job -> pending, attempt not counted."""
        return await self._update_held(
            sql.RELEASE_JOB, {"id": lease.job_id, "token": lease.token, "now": now}
        )

    async def renew_leases(
        self, leases: Sequence[Lease], expires_at: float, now: float
    ) -> set[int]:
        """Extend every held lease in one statement; return the ids still held."""
        if not leases:
            return set()
        params = {
            "leases": json.dumps([[lease.job_id, lease.token] for lease in leases]),
            "expires_at": expires_at,
            "now": now,
        }

        def renew(conn: sqlite3.Connection) -> set[int]:
            return {row[0] for row in conn.execute(sql.RENEW_LEASES, params).fetchall()}

        return await self._write_side().submit(renew)

    async def recover_stale_jobs(self, now: float) -> list[RecoveredJob]:
        """Expired leases -> pending (attempt counted) or failed (retries spent)."""

        def recover(conn: sqlite3.Connection) -> list[RecoveredJob]:
            rows = conn.execute(sql.RECOVER_STALE_JOBS, {"now": now}).fetchall()
            return [RecoveredJob(r[0], r[1], r[2], JobStatus(r[3])) for r in rows]

        return await self._write_side().submit(recover)

    async def cancel_job(self, job_id: int, now: float) -> bool:
        """pending/retry_scheduled -> cancelled."""

        def cancel(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql.CANCEL_JOB, {"id": job_id, "now": now}).rowcount == 1

        return await self._write_side().submit(cancel)

    async def retry_job(self, job_id: int, now: float) -> bool:
        """failed/cancelled -> pending now, unless an active job holds the same pair."""

        def retry(conn: sqlite3.Connection) -> bool:
            row = conn.execute(sql.SELECT_RETRYABLE, {"id": job_id}).fetchone()
            if row is None:
                return False
            # Inside the writer's IMMEDIATE transaction nobody else can insert in between.
            if conn.execute(sql.SELECT_ACTIVE_ID, (row[0], row[1])).fetchone() is not None:
                return False
            return conn.execute(sql.RETRY_JOB, {"id": job_id, "now": now}).rowcount == 1

        return await self._write_side().submit(retry)

    async def delete_finished_jobs(self, finished_before: float) -> int:
        """Delete completed/cancelled jobs finished before ``finished_before``."""

        def delete(conn: sqlite3.Connection) -> int:
            return conn.execute(sql.DELETE_FINISHED_JOBS, {"before": finished_before}).rowcount

        return await self._write_side().submit(delete)

    async def register_worker(self, worker: WorkerRecord) -> None:
        """Insert or replace the worker's row."""
        await self.heartbeat_worker(worker)

    async def heartbeat_worker(self, worker: WorkerRecord) -> None:
        """Upsert the worker's row with a fresh heartbeat and counters."""
        params = {
            "id": worker.worker_id,
            "host": worker.host,
            "pid": worker.pid,
            "started_at": worker.started_at,
            "last_heartbeat": worker.last_heartbeat,
            "heartbeat_interval": worker.heartbeat_interval,
            "jobs_processed": worker.jobs_processed,
            "jobs_failed": worker.jobs_failed,
        }

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(sql.UPSERT_WORKER, params)

        await self._write_side().submit(upsert)

    async def unregister_worker(self, worker_id: str) -> None:
        """Delete the worker's row."""

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute(sql.DELETE_WORKER, (worker_id,))

        await self._write_side().submit(delete)

    async def prune_workers(self, now: float) -> int:
        """Delete rows of workers no longer alive."""

        def prune(conn: sqlite3.Connection) -> int:
            return conn.execute(sql.PRUNE_WORKERS, {"now": now}).rowcount

        return await self._write_side().submit(prune)

    # -- reads -------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        """One job, or None."""

        def read(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(sql.SELECT_JOB, (job_id,)).fetchone()
            return None if row is None else Job.from_row(row)

        return await self._read_side().read(read)

    async def list_jobs(
        self, statuses: Sequence[JobStatus] | None, job_type: str | None, limit: int
    ) -> list[Job]:
        """Jobs matching the filters, newest first."""
        statement = sql.list_jobs_sql(statuses is not None, job_type is not None)
        params: dict[str, Any] = {"limit": limit}
        if statuses is not None:
            params["statuses"] = json.dumps([s.value for s in statuses])
        if job_type is not None:
            params["job_type"] = job_type

        def read(conn: sqlite3.Connection) -> list[Job]:
            return [Job.from_row(row) for row in conn.execute(statement, params).fetchall()]

        return await self._read_side().read(read)

    async def queue_stats(self, now: float) -> QueueStats:
        """Counts from one read transaction, so they add up."""

        def read(conn: sqlite3.Connection) -> QueueStats:
            conn.execute("BEGIN")
            try:
                counts = dict(conn.execute(sql.COUNT_BY_STATUS).fetchall())
                delayed = conn.execute(sql.COUNT_DELAYED, {"now": now}).fetchone()[0]
                workers = conn.execute(sql.COUNT_LIVE_WORKERS, {"now": now}).fetchone()[0]
            finally:
                conn.execute("COMMIT")
            return QueueStats(
                total_jobs=sum(counts.values()),
                pending_jobs=counts.get("pending", 0),
                processing_jobs=counts.get("processing", 0),
                retry_scheduled_jobs=counts.get("retry_scheduled", 0),
                completed_jobs=counts.get("completed", 0),
                failed_jobs=counts.get("failed", 0),
                cancelled_jobs=counts.get("cancelled", 0),
                delayed_jobs=delayed,
                active_workers=workers,
            )

        return await self._read_side().read(read)


def _migrate_in_transaction(conn: sqlite3.Connection, path: str) -> None:
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if application_id not in (0, sql.APPLICATION_ID):
        raise DatabaseOpenError(
            f"not an asyncqueue database (application_id {application_id:#x})", path
        )
    if version > sql.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database schema version {version} is newer than this asyncqueue supports "
            f"({sql.SCHEMA_VERSION}); upgrade asyncqueue",
            path,
        )
    if version == 0:
        tables = {row[0] for row in conn.execute(sql.SELECT_TABLES)}
        if tables:
            raise DatabaseOpenError(
                f"the file holds other tables ({', '.join(sorted(tables))}) and no asyncqueue "
                "schema; use a separate file for the queue",
                path,
            )
    for target in range(version + 1, sql.SCHEMA_VERSION + 1):
        for statement in sql.MIGRATIONS[target]:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target}")
    conn.execute(f"PRAGMA application_id = {sql.APPLICATION_ID}")


def _open_failure(exc: sqlite3.Error) -> str:
    message = str(exc)
    if "not a database" in message or "malformed" in message:
        return f"not a SQLite database, or corrupt: {message}"
    if "readonly" in message or "read-only" in message:
        return f"the database or its directory is read-only: {message}"
    if "unable to open" in message:
        return f"cannot open the database file (missing directory or no permission): {message}"
    return f"cannot open the queue database: {message}"
