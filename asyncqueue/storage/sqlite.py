"""The SQLite backend: the storage verbs as statements run by the writer and the read pool."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import aiosqlite
import anyio

from asyncqueue.config import QueueSettings
from asyncqueue.errors import (
    ConfigurationError,
    DatabaseOpenError,
    QueueClosedError,
    SchemaVersionError,
)
from asyncqueue.job import ClaimedJob, Job, JobId, JobStatus, QueueStats, claimed_job
from asyncqueue.metrics import MetricsRows
from asyncqueue.storage import sqlite_maintenance as maintenance
from asyncqueue.storage import sqlite_sql as sql
from asyncqueue.storage.base import (
    ClaimRequest,
    EventRow,
    EventSink,
    FinishedJob,
    Lease,
    RecoveredJob,
    WorkerRecord,
)
from asyncqueue.storage.sqlite_checkpoint import Checkpointer
from asyncqueue.storage.sqlite_connection import (
    Mergeable,
    ReadPool,
    SQLiteWriter,
    connect,
    enable_wal,
    first,
    rows,
    run_in_thread,
)
from asyncqueue.storage.sqlite_metrics import read_metrics_rows
from asyncqueue.storage.sqlite_watch import ChangeWatcher
from asyncqueue.storage.transitions import claimed_events as _claimed_events
from asyncqueue.storage.transitions import enqueued_events as _enqueued_events
from asyncqueue.storage.transitions import finished_events as _finished_events
from asyncqueue.storage.transitions import recovered_events, sort_claimed
from asyncqueue.timebounds import due_time
from asyncqueue.validation import NewJob

T = TypeVar("T")


#: Largest metadata (JSON characters) of an enqueue the event loop may commit itself: a row
#: that fits in one page. A larger one is validated and written in the writer's thread.
BRIEF_METADATA_CHARS = 2048


class SQLiteStorage:
    """Jobs in one SQLite file: one writer connection (group commit) and a read pool."""

    def __init__(self, settings: QueueSettings) -> None:
        self._settings = settings
        self._path = settings.path
        self._writer: SQLiteWriter | None = None
        self._reads: ReadPool | None = None
        self._history = settings.record_history
        #: A commit under NORMAL only writes to the WAL: brief enough for the event loop.
        self._brief_commits = settings.synchronous == "NORMAL"
        #: Receives, in the event loop after each commit, the transitions the write made.
        self.event_sink: EventSink | None = None

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the writer, create or migrate the schema, then open the read pool."""
        s = self._settings
        writer_conn = await self._connect(query_only=False, any_thread=self._brief_commits)
        readers: list[aiosqlite.Connection] = []
        try:
            await run_in_thread(writer_conn, self._prepare)
            for _ in range(s.read_connections):
                readers.append(await self._connect(query_only=True))
            self._checkpointer = Checkpointer(await self._connect(query_only=False))
        except BaseException:
            for conn in [*readers, writer_conn]:
                await conn.close()
            raise
        self._writer = SQLiteWriter(
            writer_conn,
            self._path,
            busy_retries=s.busy_retries,
            busy_timeout=s.busy_timeout,
            brief_commits=self._brief_commits,
        )
        self._writer.on_commit = self._checkpointer.committed
        self._writer.start()
        self._reads = ReadPool(readers, self._path)
        self._writer_conn = writer_conn

    async def _connect(self, *, query_only: bool, any_thread: bool = False) -> aiosqlite.Connection:
        s = self._settings
        try:
            return await connect(
                self._path,
                busy_timeout=s.busy_timeout,
                synchronous=s.synchronous,
                query_only=query_only,
                any_thread=any_thread,
            )
        except sqlite3.Error as exc:
            raise DatabaseOpenError(_open_failure(exc), self._path) from exc

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Refuse a foreign file before changing anything in it; then WAL; then migrate."""
        try:
            _check_ownership(conn, self._path)
            enable_wal(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                _migrate_in_transaction(conn, self._path)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            # Checkpoints run on their own connection (sqlite_checkpoint); the writer waits
            # for the lock in begin_immediate rather than in SQLite's busy handler.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("PRAGMA busy_timeout = 0")
            if self._history:
                for trigger in sql.HISTORY_TRIGGERS:
                    conn.execute(trigger)
        except sqlite3.Error as exc:
            raise DatabaseOpenError(_open_failure(exc), self._path) from exc

    async def close(self) -> None:
        """Commit pending writes and close every connection."""
        writer, reads = self._writer, self._reads
        self._writer = self._reads = None
        if writer is not None:
            await writer.close()
            await self._writer_conn.close()
            await self._checkpointer.close()
        if reads is not None:
            await reads.close()

    async def exists(self) -> bool:
        """Whether the database file exists."""
        return await anyio.Path(self._path).exists()

    def _write_side(self) -> SQLiteWriter:
        if self._writer is None:
            raise QueueClosedError(f"the queue at {self._path} is not open")
        return self._writer

    def _read_side(self) -> ReadPool:
        if self._reads is None:
            raise QueueClosedError(f"the queue at {self._path} is not open")
        return self._reads

    # -- writes ------------------------------------------------------------------------
    #
    # History: the frequent transitions (claimed, completed, retry_scheduled) are recorded
    # by the TEMP triggers in sqlite_sql.HISTORY_TRIGGERS, enqueues by one statement after
    # their INSERTs (sql.RECORD_ENQUEUED_AFTER), the rare ones here; each in the transaction
    # that makes the transition. Events for in-process subscribers are built in the event
    # loop after the commit, and only while someone subscribes.

    def _publish(self, build: Callable[[], list[EventRow]]) -> None:
        sink = self.event_sink
        if sink is not None and sink.has_subscribers:
            events = build()
            if events:
                sink.publish(events)

    async def _write_recorded(
        self, fn: Callable[[sqlite3.Connection], tuple[T, list[EventRow]]]
    ) -> T:
        """A rare transition: ``fn`` reports its events, which the history also records."""
        history = self._history

        def run(conn: sqlite3.Connection) -> tuple[T, list[EventRow]]:
            result, events = fn(conn)
            if history and events:
                record_events(conn, events)
            return result, events

        # One writing statement in ``fn``; history adds the events' INSERT.
        result, events = await self._write_side().submit(run, single_statement=not history)
        self._publish(lambda: events)
        return result

    def _insert_many_merged(
        self, conn: sqlite3.Connection, batch: list[tuple[NewJob, float]]
    ) -> list[JobId]:
        return insert_many(conn, batch, history=self._history)

    async def insert_jobs(self, jobs: Sequence[NewJob], now: float) -> list[JobId]:
        """Insert in one statement; an active duplicate (also within ``jobs``) yields its id."""
        if len(jobs) == 1:
            return [await self.insert_job(jobs[0], now)]
        batch = [(job, now) for job in jobs]
        history = self._history

        def insert(conn: sqlite3.Connection) -> list[JobId]:
            return insert_many(conn, batch, history=history)

        # Several statements (one per chunk): all of them or none, through a savepoint.
        ids = await self._write_side().submit(insert)
        self._publish(lambda: _enqueued_events(batch, ids))
        return ids

    async def insert_job(self, job: NewJob, now: float) -> JobId:
        """Insert one job; concurrent callers sharing a transaction share one statement."""
        params = (
            job.job_type,
            job.target_id,
            job.priority,
            job.max_retries,
            job.metadata_json,
            now,
            job.run_at,
            now,
        )
        key = (job.job_type, job.target_id)
        history = self._history

        def insert(conn: sqlite3.Connection) -> JobId:
            cursor = conn.execute(sql.INSERT_JOB, params)
            try:
                job_id = cursor.lastrowid if cursor.rowcount == 1 else None
            finally:
                cursor.close()
            if job_id is None:
                return JobId(first(conn, sql.SELECT_ACTIVE_ID, key)[0], False)
            if history:
                conn.execute(sql.RECORD_ENQUEUED_AFTER, (job_id - 1,))
            return JobId(job_id, True)

        # Concurrent single enqueues that share a transaction go in as one statement.
        merge = Mergeable("insert_job", (job, now), self._insert_many_merged)
        job_id = await self._write_side().submit(
            insert,
            single_statement=not history,
            merge=merge,
            brief=len(job.metadata_json) <= BRIEF_METADATA_CHARS,
        )
        self._publish(lambda: _enqueued_events([(job, now)], [job_id]))
        return job_id

    async def insert_jobs_in(
        self, connection: Any, jobs: Sequence[NewJob], now: float
    ) -> list[JobId]:
        """Refused: a SQLite queue has its own connections (``connection=`` is for PostgreSQL)."""
        raise ConfigurationError(
            "connection= (transactional enqueue in your own transaction) needs the PostgreSQL "
            f"backend; this queue is the SQLite file {self._path}"
        )

    async def finish_and_claim(
        self,
        finished: Sequence[FinishedJob],
        claim: ClaimRequest | None,
        now: float,
        worker_id: str | None = None,
        brief: bool = False,
    ) -> tuple[set[int], list[ClaimedJob]]:
        """Completions in one statement, other outcomes a few per statement, then the claim:
        one submission, one hop (none when ``brief`` and the writer is idle, see
        SQLiteWriter.submit)."""
        outcome_statements = _outcome_statements(finished, now)
        claim_ids: str | None = None
        claim_params: dict[str, Any] = {}
        if claim is not None and claim.limit > 0:
            claim_ids, claim_params = _claim_statement(claim)
            worker_id = claim.worker_id
        if not outcome_statements and claim_ids is None:
            return set(), []
        # Failed and released outcomes are not recorded by a trigger (see HISTORY_TRIGGERS).
        rare = [f for f in finished if f.status in _UNTRIGGERED] if self._history else []

        def exchange(conn: sqlite3.Connection, exact: bool) -> tuple[set[int], str | None]:
            applied: set[int] = set()
            for statement in outcome_statements:
                if exact:
                    applied.update(
                        row[0] for row in rows(conn, statement.returning, statement.params)
                    )
                elif conn.execute(statement.sql, statement.params).rowcount == len(statement.ids):
                    applied.update(statement.ids)
                else:
                    raise _LeaseLost
            if rare:
                record_events(conn, _finished_events(rare, applied, now, worker_id))
            if claim_ids is None:
                return applied, None
            ids = first(conn, claim_ids, claim_params)[0]
            if ids == "[]":
                return applied, None
            conn.execute(sql.CLAIM_JOBS, {**claim_params, "ids": ids}).close()
            return applied, first(conn, sql.CLAIMED_JOBS, {"ids": ids})[0]

        write = self._write_side()
        try:
            applied, claimed_json = await write.submit(
                lambda conn: exchange(conn, exact=False), pipelined=True, brief=brief
            )
        except _LeaseLost:
            # Undone: run it again, learning which outcomes still held their lease.
            applied, claimed_json = await write.submit(
                lambda conn: exchange(conn, exact=True), pipelined=True
            )
        claimed = [] if claimed_json is None else [claimed_job(v) for v in json.loads(claimed_json)]
        if claim is not None:
            # The JSON array's order is not guaranteed; hand jobs out in the strategy's.
            sort_claimed(claimed, claim.strategy)
        self._publish(
            lambda: (
                _finished_events(finished, applied, now, worker_id)
                + _claimed_events(claimed, now, worker_id)
            )
        )
        return applied, claimed

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
            return {row[0] for row in rows(conn, sql.RENEW_LEASES, params)}

        return await self._write_side().submit(renew, single_statement=True)

    async def recover_stale_jobs(self, now: float) -> list[RecoveredJob]:
        """Expired leases -> pending (attempt counted) or failed (retries spent)."""

        def recover(conn: sqlite3.Connection) -> tuple[list[RecoveredJob], list[EventRow]]:
            found = rows(conn, sql.RECOVER_STALE_JOBS, {"now": now})
            events = recovered_events(found, now)
            return [RecoveredJob(r[0], r[1], r[2], JobStatus(r[3])) for r in found], events

        return await self._write_recorded(recover)

    async def cancel_job(self, job_id: int, now: float) -> bool:
        """pending/retry_scheduled -> cancelled."""

        def cancel(conn: sqlite3.Connection) -> tuple[bool, list[EventRow]]:
            row = first(conn, sql.CANCEL_JOB, {"id": job_id, "now": now})
            if row is None:
                return False, []
            event: EventRow = (
                job_id,
                "cancelled",
                "cancelled",
                now,
                None,
                row[0],
                None,
                None,
                None,
            )
            return True, [event]

        return await self._write_recorded(cancel)

    async def retry_job(self, job_id: int, now: float) -> bool:
        """failed/cancelled -> pending now, unless an active job holds the same pair."""

        def retry(conn: sqlite3.Connection) -> tuple[bool, list[EventRow]]:
            row = first(conn, sql.SELECT_RETRYABLE, {"id": job_id})
            if row is None:
                return False, []
            # Inside the writer's IMMEDIATE transaction nobody else can insert in between.
            if first(conn, sql.SELECT_ACTIVE_ID, (row[0], row[1])) is not None:
                return False, []
            if first(conn, sql.RETRY_JOB, {"id": job_id, "now": now}) is None:
                return False, []
            event: EventRow = (job_id, "retried", "pending", now, None, row[0], None, now, None)
            return True, [event]

        return await self._write_recorded(retry)

    async def delete_finished_jobs(self, finished_before: float) -> int:
        """Delete completed/cancelled jobs finished before ``finished_before``, with history."""
        params = {"before": finished_before}

        def delete(conn: sqlite3.Connection) -> int:
            # Events first: the subquery finds the jobs about to go.
            conn.execute(sql.DELETE_EVENTS_OF_FINISHED_JOBS, params)
            return conn.execute(sql.DELETE_FINISHED_JOBS, params).rowcount

        return await self._write_side().submit(delete)

    async def earliest_ready(self, job_types: tuple[str, ...] | None) -> float | None:
        """The earliest due time of a ready job of these types, from a read connection."""
        params = {} if job_types is None else {"job_types": json.dumps(job_types)}
        statement = sql.EARLIEST_READY[job_types is not None]

        def read(conn: sqlite3.Connection) -> float | None:
            return due_time(first(conn, statement, params)[0])

        return await self._read_side().read(read)

    async def read_metrics(self, now: float, window: float) -> MetricsRows:
        """The raw figures of ``get_metrics``, read in one snapshot."""

        def read(conn: sqlite3.Connection) -> MetricsRows:
            return read_metrics_rows(conn, now, window)

        return await self._read_side().read(read)

    async def get_job_history(self, job_id: int) -> list[EventRow]:
        """Every recorded transition of one job, oldest first."""

        def read(conn: sqlite3.Connection) -> list[EventRow]:
            return [(*row, None) for row in rows(conn, sql.SELECT_JOB_EVENTS, (job_id,))]

        return await self._read_side().read(read)

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

        await self._write_side().submit(upsert, single_statement=True)

    async def unregister_worker(self, worker_id: str) -> None:
        """Delete the worker's row."""

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute(sql.DELETE_WORKER, (worker_id,))

        await self._write_side().submit(delete, single_statement=True)

    async def prune_workers(self, now: float) -> int:
        """Delete rows of workers no longer alive."""

        def prune(conn: sqlite3.Connection) -> int:
            return conn.execute(sql.PRUNE_WORKERS, {"now": now}).rowcount

        return await self._write_side().submit(prune, single_statement=True)

    def watch_changes(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Watch the WAL file for commits by other connections (see ``sqlite_watch``).

        The queue's own commits (a worker's heartbeat, its outcomes) are told apart where
        the writer can say so (:meth:`SQLiteWriter.when_others_committed`), so an idle
        worker is not woken to claim by its own writes.
        """
        writer = self._write_side()

        def changed() -> None:
            writer.when_others_committed(callback)

        watcher = ChangeWatcher(self._path, changed)
        watcher.start()
        return watcher.close

    # -- reads -------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        """One job, or None."""

        def read(conn: sqlite3.Connection) -> Job | None:
            row = first(conn, sql.SELECT_JOB, (job_id,))
            return None if row is None else Job.from_row(row)

        return await self._read_side().read(read)

    async def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """Several jobs in one query (a rowid lookup each)."""
        ids = json.dumps(list(job_ids))

        def read(conn: sqlite3.Connection) -> list[Job]:
            return [Job.from_row(row) for row in rows(conn, sql.SELECT_JOBS, (ids,))]

        return await self._read_side().read(read)

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
        """Jobs matching the filters, newest first, below ``before_id`` if given.

        Filtered by status or type, the page is merged from ordered index ranges, one per
        (status, type) pair (see ``sqlite_sql.list_ranges_sql``), so it never sorts every
        matching job.
        """
        filters = {
            "by_target": target_id is not None,
            "by_error": error_message is not None,
            "before": before_id is not None,
        }
        params: dict[str, Any] = {
            "limit": limit,
            "job_type": job_type,
            "target_id": target_id,
            "error_message": error_message,
            "before_id": before_id,
        }
        if statuses is not None:
            params["statuses"] = json.dumps([s.value for s in statuses])

        def ranges(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            pairs: list[tuple[str, str]] = []
            for status in dict.fromkeys(statuses or JobStatus):
                if job_type is not None:
                    pairs.append((status.value, job_type))
                    continue
                found = rows(conn, sql.JOB_TYPES_IN_STATUS, {"status": status.value})
                pairs.extend((status.value, t) for (t,) in found)
            return pairs

        def read(conn: sqlite3.Connection) -> list[Job]:
            if statuses is None and job_type is None:
                statement = sql.list_jobs_sql(False, False, **filters)
                return [Job.from_row(row) for row in rows(conn, statement, params)]
            conn.execute("BEGIN")  # the types and the jobs from one snapshot
            try:
                pairs = ranges(conn)
                if len(pairs) > sql.MAX_LIST_RANGES:
                    statement = sql.list_jobs_sql(
                        statuses is not None, job_type is not None, **filters
                    )
                    found = rows(conn, statement, params)
                elif pairs:
                    for i, (status, type_name) in enumerate(pairs):
                        params[f"s{i}"], params[f"t{i}"] = status, type_name
                    found = rows(conn, sql.list_ranges_sql(len(pairs), **filters), params)
                else:
                    found = []
            finally:
                conn.execute("COMMIT")
            return [Job.from_row(row) for row in found]

        return await self._read_side().read(read)

    async def failed_groups(self, limit: int) -> list[tuple[str, str, int, int, float | None]]:
        """Failed jobs grouped by error and type, largest group first."""

        def read(conn: sqlite3.Connection) -> list[tuple[str, str, int, int, float | None]]:
            return [tuple(row) for row in rows(conn, sql.FAILED_GROUPS, {"limit": limit})]

        return await self._read_side().read(read)

    async def finished_by_bucket(
        self, since: float, bucket_seconds: float
    ) -> list[tuple[int, int, int]]:
        """Completed and failed jobs per bucket since ``since``, from one read transaction."""
        params: dict[str, Any] = {"since": since, "bucket": bucket_seconds}

        def read(conn: sqlite3.Connection) -> list[tuple[int, int, int]]:
            conn.execute("BEGIN")
            try:
                finished = dict(rows(conn, sql.FINISHED_BY_BUCKET, params))
                cancelled = dict(rows(conn, sql.ENDED_BY_BUCKET, {**params, "status": "cancelled"}))
                failed = dict(rows(conn, sql.ENDED_BY_BUCKET, {**params, "status": "failed"}))
            finally:
                conn.execute("COMMIT")
            buckets = sorted(set(finished) | set(failed))
            return [
                (b, finished.get(b, 0) - cancelled.get(b, 0), failed.get(b, 0)) for b in buckets
            ]

        return await self._read_side().read(read)

    async def queue_stats(self, now: float) -> QueueStats:
        """Counts from one read transaction, so they add up."""

        def read(conn: sqlite3.Connection) -> QueueStats:
            conn.execute("BEGIN")
            try:
                counts = dict(rows(conn, sql.COUNT_BY_STATUS))
                delayed = first(conn, sql.COUNT_DELAYED, {"now": now})[0]
                workers = first(conn, sql.COUNT_LIVE_WORKERS, {"now": now})[0]
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

    # -- maintenance: thin delegations to sqlite_maintenance -----------------------------

    async def integrity_problems(self) -> list[str]:
        """Problems ``PRAGMA integrity_check`` and the ownership check find ([] if none)."""
        return await maintenance.integrity_problems(self._path, self._settings.busy_timeout)

    async def checkpoint(self) -> maintenance.CheckpointResult:
        """``PRAGMA wal_checkpoint(TRUNCATE)`` on a connection of its own."""
        return await maintenance.checkpoint(self._path, self._settings.busy_timeout)

    async def vacuum(self) -> maintenance.VacuumResult:
        """``VACUUM`` on a connection of its own, then a checkpoint."""
        return await maintenance.vacuum(self._path, self._settings.busy_timeout)

    async def analyze(self) -> None:
        """``ANALYZE`` on a connection of its own."""
        await maintenance.analyze(self._path, self._settings.busy_timeout)

    async def backup(self, destination: str, *, overwrite: bool) -> maintenance.BackupResult:
        """An online backup to ``destination`` (see ``sqlite_maintenance.backup``)."""
        return await maintenance.backup(
            self._path, destination, overwrite=overwrite, busy_timeout=self._settings.busy_timeout
        )

    async def restore(self, source: str) -> maintenance.RestoreResult:
        """Replace the content with a backup's (see ``sqlite_maintenance.restore``)."""
        return await maintenance.restore(
            self._path, source, busy_timeout=self._settings.busy_timeout
        )

    async def list_workers(self, now: float) -> list[maintenance.WorkerInfo]:
        """Every row of the workers table, with whether it is alive at ``now``."""
        return await self._read_side().read(maintenance.workers_reader(now))

    async def counts_by_type(self) -> dict[str, dict[str, int]]:
        """Job counts by job type, then by status."""
        return await self._read_side().read(maintenance.read_counts_by_type)

    async def failed_job_ids(self, job_type: str | None) -> list[int]:
        """Ids of every failed job (of ``job_type`` only, if given), oldest first."""
        return await self._read_side().read(maintenance.failed_ids_reader(job_type))


def insert_many(
    conn: sqlite3.Connection, batch: Sequence[tuple[NewJob, float]], *, history: bool
) -> list[JobId]:
    """Insert ``(job, enqueued_at)`` pairs; return ids in order, duplicates found.

    With ``history``, each new job's "enqueued" row goes into the history too.

    Runs inside the writer's transaction, which holds the write lock: when every row went
    in, their ids are the next ones in the AUTOINCREMENT sequence, in order. Otherwise each
    pair's active job is looked up; an id above the sequence's old value is new, and only
    the first item of a pair created it.
    """
    last = first(conn, sql.LAST_JOB_ID)
    before = 0 if last is None else int(last[0])
    inserted = 0
    for size, chunk in _chunks(batch, sql.INSERT_ROWS_PER_STATEMENT):
        params: list[Any] = []
        for job, at in chunk:
            params += (
                job.job_type,
                job.target_id,
                job.priority,
                job.max_retries,
                job.metadata_json,
                at,
                job.run_at,
                at,
            )
        cursor = conn.execute(sql.INSERT_ROWS[size], params)
        inserted += cursor.rowcount
        cursor.close()
    if history and inserted:
        conn.execute(sql.RECORD_ENQUEUED_AFTER, (before,))
    if inserted == len(batch):
        return JobId.created_range(before + 1, before + 1 + inserted)
    ids: list[JobId] = []
    seen: set[tuple[str, str]] = set()
    for job, _ in batch:
        key = (job.job_type, job.target_id)
        job_id = int(first(conn, sql.SELECT_ACTIVE_ID, key)[0])
        ids.append(JobId(job_id, job_id > before and key not in seen))
        seen.add(key)
    return ids


def record_events(conn: sqlite3.Connection, events: Sequence[EventRow]) -> None:
    """Insert history rows, a few per statement."""
    for size, chunk in _chunks(events, sql.EVENT_ROWS_PER_STATEMENT):
        params = [value for event in chunk for value in event[:8]]
        conn.execute(sql.INSERT_EVENTS[size], params)


def _chunks(items: Sequence[T], sizes: Sequence[int]) -> Iterator[tuple[int, Sequence[T]]]:
    """Cut ``items`` into runs of the given sizes, largest first (``sizes`` ends with 1).

    Each size has one prepared multi-row statement, so a batch of any length runs as a few
    of them instead of one statement of a never-seen size.
    """
    start = 0
    for size in sizes:
        while len(items) - start >= size:
            yield size, items[start : start + size]
            start += size


#: Outcomes whose history row the storage code writes (no trigger can tell them apart).
_UNTRIGGERED = frozenset({JobStatus.FAILED, JobStatus.PENDING})


class _OutcomeStatement(NamedTuple):
    """One UPDATE applying outcomes: without and with RETURNING, and the jobs it names."""

    sql: str
    returning: str
    params: Sequence[Any] | Mapping[str, Any]
    ids: list[int]


def _outcome_statements(finished: Sequence[FinishedJob], now: float) -> list[_OutcomeStatement]:
    """The outcome UPDATEs for ``finished``: plain completions in one, the rest a few each."""
    completed: list[FinishedJob] = []
    others: list[FinishedJob] = []
    for f in finished:
        plain = (
            f.status is JobStatus.COMPLETED
            and f.error is None
            and f.run_at is None
            and f.result_json is None
        )
        (completed if plain else others).append(f)
    statements: list[_OutcomeStatement] = []
    if completed:
        done = json.dumps([[f.job_id, f.token] for f in completed])
        statements.append(
            _OutcomeStatement(
                sql.FINISH_COMPLETED,
                sql.FINISH_COMPLETED_RETURNING,
                {"done": done, "now": now},
                [f.job_id for f in completed],
            )
        )
    for size, chunk in _chunks(others, sql.FINISH_ROWS_PER_STATEMENT):
        params: list[Any] = []
        for f in chunk:
            params += (
                f.job_id,
                f.token,
                f.status.value,
                f.run_at,
                f.error,
                f.counts_retry,
                now,
                f.result_json,
            )
        statements.append(
            _OutcomeStatement(
                sql.FINISH_ROWS[size],
                sql.FINISH_ROWS_RETURNING[size],
                params,
                [f.job_id for f in chunk],
            )
        )
    return statements


class _LeaseLost(Exception):
    """An outcome's lease was no longer held: the exchange is undone and run exactly."""


def _claim_statement(claim: ClaimRequest) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "worker_id": claim.worker_id,
        "lease_expires_at": claim.lease_expires_at,
        "now": claim.now,
        "limit": claim.limit,
    }
    if claim.job_types is not None:
        params["job_types"] = json.dumps(claim.job_types)
    return sql.CLAIM_IDS[(claim.strategy, claim.job_types is not None)], params


def _migrate_in_transaction(conn: sqlite3.Connection, path: str) -> None:
    # Checked again under the write lock: another process may have migrated meanwhile.
    version = _check_ownership(conn, path)
    for target in range(version + 1, sql.SCHEMA_VERSION + 1):
        for statement in sql.MIGRATIONS[target]:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target}")
    if version < sql.SCHEMA_VERSION:
        conn.execute(f"PRAGMA application_id = {sql.APPLICATION_ID}")


def _check_ownership(conn: sqlite3.Connection, path: str) -> int:
    """Return the file's schema version, or raise if the file is not ours to use."""
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
    return int(version)


def _open_failure(exc: sqlite3.Error) -> str:
    message = str(exc)
    if "not a database" in message or "malformed" in message:
        return f"not a SQLite database, or corrupt: {message}"
    if "readonly" in message or "read-only" in message:
        return f"the database or its directory is read-only: {message}"
    if "unable to open" in message:
        return f"cannot open the database file (missing directory or no permission): {message}"
    return f"cannot open the queue database: {message}"
