"""The PostgreSQL backend: the storage verbs as single statements over an asyncpg pool.

Each verb is one statement (one round trip, its own transaction) whose CTEs also write the
history rows; enqueues send their ``pg_notify`` from the same statement. Concurrent single
enqueues share a statement (:class:`EnqueueBatcher`), as SQLite's writer merges them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from asyncqueue.config import QueueSettings, redacted
from asyncqueue.errors import (
    ConfigurationError,
    DatabaseError,
    DatabaseOpenError,
    SchemaVersionError,
)
from asyncqueue.job import ClaimedJob, Job, JobId, JobStatus, QueueStats, claimed_job
from asyncqueue.metrics import MetricsRows
from asyncqueue.storage import postgres_maintenance as maintenance
from asyncqueue.storage import postgres_sql as sql
from asyncqueue.storage.base import (
    ClaimRequest,
    EventRow,
    EventSink,
    FinishedJob,
    Lease,
    RecoveredJob,
    WorkerRecord,
)
from asyncqueue.storage.maintenance import (
    BackupResult,
    CheckpointResult,
    RestoreResult,
    VacuumResult,
    WorkerInfo,
)
from asyncqueue.storage.postgres_batch import EnqueueBatcher
from asyncqueue.storage.postgres_connection import (
    Connection,
    Database,
    Listener,
    probe,
    translate,
)
from asyncqueue.storage.postgres_metrics import read_metrics_rows
from asyncqueue.storage.postgres_notify import NotifyDebouncer
from asyncqueue.storage.transitions import (
    claimed_events,
    enqueued_events,
    finished_events,
    recovered_events,
    sort_claimed,
)
from asyncqueue.timebounds import due_time
from asyncqueue.validation import NewJob

#: Tries of an enqueue whose duplicate finished between the insert and the lookup.
_INSERT_TRIES = 5
#: Smallest batch of distinct pairs that goes in as a plain insert first: below it the
#: saving is smaller than a failed statement's cost.
PLAIN_INSERT_FROM = 16
#: Conflict-free inserts in a row before plain inserts are tried again after a duplicate.
PLAIN_INSERT_AFTER = 8


class PostgresStorage:
    """Jobs in a PostgreSQL schema of their own, shared by every process that opens it."""

    def __init__(self, settings: QueueSettings) -> None:
        self._settings = settings
        self._url = settings.path
        self._schema = settings.schema
        self._history = settings.record_history
        self._channel = sql.notify_channel(settings.schema)
        self._db = Database(
            settings.path, settings.pool_size, application_name=f"asyncqueue:{settings.schema}"
        )
        self._batcher = EnqueueBatcher(
            self._insert_batch, lambda batch: self._insert_batch(batch, lone=True)
        )
        self._notifier = NotifyDebouncer(self._notify)
        #: Inserts in a row that met no active duplicate (see ``_insert_on``).
        self._conflict_free = PLAIN_INSERT_AFTER
        #: Receives, in the event loop after each commit, the transitions the write made.
        self.event_sink: EventSink | None = None

    @property
    def path(self) -> str:
        """The database URL, its password hidden."""
        return redacted(self._url)

    def _sql(self, statement: str) -> tuple[str, tuple[str, ...]]:
        return sql.positional(sql.in_schema(statement, self._schema))

    async def _fetch(self, conn: Connection, statement: str, **params: Any) -> list[Any]:
        text, names = self._sql(statement)
        return list(await conn.fetch(text, *(params[name] for name in names)))

    async def _fetchval(self, conn: Connection, statement: str, **params: Any) -> Any:
        text, names = self._sql(statement)
        return await conn.fetchval(text, *(params[name] for name in names))

    async def _execute(self, conn: Connection, statement: str, **params: Any) -> None:
        text, names = self._sql(statement)
        await conn.execute(text, *(params[name] for name in names))

    def _publish(self, build: Callable[[], list[EventRow]]) -> None:
        sink = self.event_sink
        if sink is not None and sink.has_subscribers:
            events = build()
            if events:
                sink.publish(events)

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, then create or migrate the schema under an advisory lock."""
        await self._db.open()
        try:
            await self._db.run(self._migrate)
            await self._db.run(self._warm_up)
        except DatabaseOpenError:
            await self._db.close()
            raise
        except DatabaseError as exc:
            # Say which schema: one holding another application's tables, a half-made
            # queue schema (an empty version table), or objects dropped by hand.
            await self._db.close()
            raise DatabaseOpenError(
                f"the schema {self._schema!r} is not a usable asyncqueue schema: "
                f"{exc.__cause__ or exc}",
                self.path,
            ) from exc
        except BaseException:
            await self._db.close()
            raise

    async def exists(self) -> bool:
        """Whether the schema holds a queue (its version table), on a connection of its own."""
        table = f"{sql.quote_identifier(self._schema)}.schema_version"
        return bool(await probe(self._url, sql.HAS_VERSION_TABLE, table=table))

    async def _migrate(self, conn: Connection) -> None:
        # Most opens find the schema current and take no lock at all.
        if await self._version(conn) == sql.SCHEMA_VERSION:
            return
        async with conn.transaction():
            # Many hosts starting at once: one migrates, the others wait here, then find
            # the schema current.
            await self._execute(conn, sql.LOCK_MIGRATIONS, key=sql.advisory_key(self._schema))
            await self._execute(conn, sql.CREATE_SCHEMA)
            await self._execute(conn, sql.CREATE_VERSION_TABLE)
            version = await self._version(conn) or 0
            for target in range(version + 1, sql.SCHEMA_VERSION + 1):
                for statement in sql.MIGRATIONS[target]:
                    await self._execute(conn, statement)
            if version < sql.SCHEMA_VERSION:
                await self._execute(conn, sql.CLEAR_VERSION)
                await self._execute(conn, sql.SET_VERSION, version=sql.SCHEMA_VERSION)

    async def _warm_up(self, conn: Connection) -> None:
        """Run the enqueue statements once, on no rows: a new server process reads the
        table's catalog entries (7 ms after a migration) and plans them now, at open,
        rather than in the first enqueue."""
        for skip_duplicates in (True, False):
            statement = sql.insert_jobs_sql(
                history=self._history, notify=False, skip_duplicates=skip_duplicates
            )
            await self._fetch(conn, statement, channel=self._channel, **_arrays([]))

    async def _version(self, conn: Connection) -> int | None:
        table = f"{sql.quote_identifier(self._schema)}.schema_version"
        if not await self._fetchval(conn, sql.HAS_VERSION_TABLE, table=table):
            return None
        version = await self._fetchval(conn, sql.SELECT_VERSION)
        if version is not None and version > sql.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"schema {self._schema!r} has version {version}, newer than this asyncqueue "
                f"supports ({sql.SCHEMA_VERSION}); upgrade asyncqueue",
                self.path,
            )
        return None if version is None else int(version)

    async def close(self) -> None:
        """Finish enqueues in flight and the NOTIFY they owe, then close the pool."""
        await self._batcher.drain()
        await self._notifier.close()
        await self._db.close()

    # -- enqueue -----------------------------------------------------------------------

    async def insert_jobs(self, jobs: Sequence[NewJob], now: float) -> list[JobId]:
        """Insert in one statement; an active duplicate (also within ``jobs``) yields its id."""
        batch = [(job, now) for job in jobs]
        return await self._insert_batch(batch)

    async def insert_job(self, job: NewJob, now: float) -> JobId:
        """Insert one job; concurrent callers share a statement."""
        return await self._batcher.submit(job, now)

    async def insert_jobs_in(
        self, connection: Any, jobs: Sequence[NewJob], now: float
    ) -> list[JobId]:
        """Insert on the caller's asyncpg connection, inside its transaction if one is open.

        The jobs exist if and only if that transaction commits; the NOTIFY goes out then.
        No events are announced (the commit is the caller's).
        """
        if not isinstance(connection, asyncpg.Connection | asyncpg.pool.PoolConnectionProxy):
            raise ConfigurationError(
                f"connection must be an asyncpg connection, got {type(connection).__name__}"
            )
        if connection.is_closed():
            raise ConfigurationError("connection is closed: pass an open asyncpg connection")
        batch = [(job, now) for job in jobs]
        try:
            # Its own NOTIFY, always: it is delivered at the caller's commit, whenever that is.
            return await self._insert_on(
                connection, batch, notify=self._settings.listen, own_transaction=False
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Not retried: the caller's transaction is the caller's to run again.
            raise translate(exc, self._url) from exc

    async def _insert_batch(
        self, batch: Sequence[tuple[NewJob, float]], *, lone: bool = False
    ) -> list[JobId]:
        notify = self._settings.listen and self._notifier.take_leading_edge()
        try:
            ids = await self._db.run(
                lambda conn: self._insert_on(conn, batch, notify=notify), pinned=lone
            )
        except BaseException:
            if notify:
                # It took over what earlier statements owed, and sent nothing.
                self._notifier.owe()
            raise
        if self._settings.listen and not notify and any(job_id.created for job_id in ids):
            self._notifier.owe()
        self._publish(lambda: enqueued_events(batch, ids))
        return ids

    async def _insert_on(
        self,
        conn: Connection,
        batch: Sequence[tuple[NewJob, float]],
        *,
        notify: bool,
        own_transaction: bool = True,
    ) -> list[JobId]:
        pairs = [(job.job_type, job.target_id) for job, _ in batch]
        # The first item of a repeated pair is the one created; the others get its id.
        first_of = dict(zip(reversed(pairs), reversed(range(len(pairs))), strict=True))
        todo = (
            batch if len(first_of) == len(batch) else [batch[i] for i in sorted(first_of.values())]
        )
        found: dict[tuple[str, str], tuple[int, bool]] = {}
        if (
            own_transaction  # a failed statement would abort the caller's transaction
            and len(todo) >= PLAIN_INSERT_FROM
            and self._conflict_free >= PLAIN_INSERT_AFTER
        ):
            inserted = await self._insert_plain(conn, todo, notify=notify)
            if inserted is not None:
                if todo is batch:
                    return JobId.created_all(inserted)
                found = {
                    (job.job_type, job.target_id): (job_id, True)
                    for (job, _), job_id in zip(todo, inserted, strict=True)
                }
                todo = []
        for _ in range(_INSERT_TRIES):
            if not todo:
                break
            rows = await self._insert_skipping_duplicates(conn, todo, notify=notify)
            for row in rows:
                if row[0] is not None:
                    found.setdefault((row[1], row[2]), (row[0], True))
            missing = [(j, at) for j, at in todo if (j.job_type, j.target_id) not in found]
            if not missing:
                self._conflict_free += 1
                todo = []
                break
            self._conflict_free = 0
            # Active duplicates, committed before the statement or meanwhile.
            rows = await self._fetch(
                conn,
                sql.SELECT_ACTIVE_IDS,
                job_types=[j.job_type for j, _ in missing],
                target_ids=[j.target_id for j, _ in missing],
            )
            for row in rows:
                found.setdefault((row[1], row[2]), (row[0], False))
            # Still missing: the duplicate finished meanwhile, so the pair is free again.
            todo = [(j, at) for j, at in missing if (j.job_type, j.target_id) not in found]
        if todo:
            raise DatabaseError("enqueue kept racing finishing duplicates", self.path)
        ids: list[JobId] = []
        for index, key in enumerate(pairs):
            job_id, created = found[key]
            ids.append(JobId(job_id, created and first_of[key] == index))
        return ids

    async def _insert_skipping_duplicates(
        self, conn: Connection, todo: Sequence[tuple[NewJob, float]], *, notify: bool
    ) -> list[Any]:
        if len(todo) == 1:
            ((job, at),) = todo
            return await self._fetch(
                conn,
                sql.insert_job_sql(history=self._history, notify=notify),
                channel=self._channel,
                job_type=job.job_type,
                target_id=job.target_id,
                priority=job.priority,
                max_retries=job.max_retries,
                metadata=job.metadata_json,
                created_at=at,
                run_at=job.run_at,
            )
        statement = sql.insert_jobs_sql(history=self._history, notify=notify)
        return await self._fetch(conn, statement, channel=self._channel, **_arrays(todo))

    async def _insert_plain(
        self, conn: Connection, todo: Sequence[tuple[NewJob, float]], *, notify: bool
    ) -> list[int] | None:
        """Insert distinct pairs without a conflict check: their ids in order, or None if
        one was active.

        The failed statement wrote nothing (it is its own transaction), so the caller
        inserts again skipping duplicates; inserts after it skip them until
        ``PLAIN_INSERT_AFTER`` in a row met none.
        """
        statement = sql.insert_jobs_sql(history=self._history, notify=notify, skip_duplicates=False)
        try:
            rows = await self._fetch(conn, statement, channel=self._channel, **_arrays(todo))
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "jobs_active_pair":
                raise
            self._conflict_free = 0
            return None
        created: list[int] = rows[0][0] or []
        if len(created) != len(todo):
            raise DatabaseError(
                f"inserted {len(created)} of {len(todo)} jobs in one statement", self.path
            )
        return created

    # -- claims and outcomes -------------------------------------------------------------

    async def finish_and_claim(
        self,
        finished: Sequence[FinishedJob],
        claim: ClaimRequest | None,
        now: float,
        worker_id: str | None = None,
        brief: bool = False,
    ) -> tuple[set[int], list[ClaimedJob]]:
        """Outcomes (one ``unnest`` UPDATE fenced by token) and the claim in one statement."""
        if claim is not None and claim.limit > 0:
            worker_id = claim.worker_id
        else:
            claim = None
        if not finished and claim is None:
            return set(), []
        pending = list(finished)
        applied: set[int] = set()
        # Lease tokens of this exchange's claims start with it: a try lost with its
        # connection after committing is recognised on the next try (see recheck).
        claim_id = uuid.uuid4().hex[:12]
        limit = claim.limit if claim is not None else 0
        taken: list[Any] = []

        async def recheck(conn: Connection) -> None:
            # The lost try may have committed: its outcomes are recorded under their token,
            # its claims hold tokens of this exchange.
            nonlocal pending, limit
            if pending:
                rows = await self._fetch(conn, sql.ALREADY_FINISHED, **_outcome_keys(pending))
                applied.update(row[0] for row in rows)
                pending = [f for f in pending if f.job_id not in applied]
            if limit:
                rows = await self._fetch(
                    conn, sql.ALREADY_CLAIMED, worker_id=worker_id, claim_id=claim_id
                )
                taken.extend(row for row in rows if row[1] not in {r[1] for r in taken})
                limit = claim.limit - len(taken) if claim is not None else 0

        async def exchange(conn: Connection) -> list[Any]:
            if not pending and not limit:
                return []
            assert claim is not None or not limit
            statement = sql.finish_and_claim_sql(
                finish=bool(pending),
                claim=bool(limit),
                strategy=claim.strategy if claim is not None else "priority",
                typed=claim is not None and claim.job_types is not None,
                history=self._history,
            )
            params: dict[str, Any] = {"now": now, "worker_id": worker_id}
            if pending:
                params.update(_outcome_params(pending))
            if limit and claim is not None:
                params.update(
                    limit=limit, lease_expires_at=claim.lease_expires_at, claim_id=claim_id
                )
                if claim.job_types is not None:
                    params["job_types"] = list(claim.job_types)
            return await self._fetch(conn, statement, **params)

        # A worker exchanges one batch at a time: its exchanges take the pinned connection.
        rows = await self._db.run(exchange, on_retry=recheck, pinned=True)
        rows = taken + rows
        claimed: list[ClaimedJob] = []
        for row in rows:
            if row[0]:
                values = list(row[1:])
                values[3] = json.loads(values[3])
                claimed.append(claimed_job(values))
            else:
                applied.add(row[1])
        if claim is not None:
            # RETURNING's order is not the claim's; hand jobs out in the strategy's.
            sort_claimed(claimed, claim.strategy)
        released = any(f.status is JobStatus.PENDING and f.job_id in applied for f in finished)
        if released and self._settings.listen:
            await self._notify()
        self._publish(
            lambda: (
                finished_events(finished, applied, now, worker_id)
                + claimed_events(claimed, now, worker_id)
            )
        )
        return applied, claimed

    async def _notify(self) -> None:
        async def notify(conn: Connection) -> None:
            await self._execute(conn, sql.NOTIFY, channel=self._channel, payload="1")

        await self._db.run(notify)

    async def renew_leases(
        self, leases: Sequence[Lease], expires_at: float, now: float
    ) -> set[int]:
        """Extend every held lease in one statement; return the ids still held."""
        if not leases:
            return set()

        async def renew(conn: Connection) -> list[Any]:
            return await self._fetch(
                conn,
                sql.RENEW_LEASES,
                ids=[lease.job_id for lease in leases],
                tokens=[lease.token for lease in leases],
                expires_at=expires_at,
                now=now,
            )

        return {row[0] for row in await self._db.run(renew)}

    async def recover_stale_jobs(self, now: float) -> list[RecoveredJob]:
        """Expired leases -> pending (attempt counted) or failed (retries spent)."""
        statement = sql.recover_stale_jobs_sql(history=self._history)

        async def recover(conn: Connection) -> list[Any]:
            return await self._fetch(conn, statement, now=now)

        found = await self._db.run(recover)
        if self._settings.listen and any(r[3] == JobStatus.PENDING for r in found):
            await self._notify()
        self._publish(lambda: recovered_events(found, now))
        return [RecoveredJob(r[0], r[1], r[2], JobStatus(r[3])) for r in found]

    async def cancel_job(self, job_id: int, now: float) -> bool:
        """pending/retry_scheduled -> cancelled."""
        statement = sql.cancel_job_sql(history=self._history)

        async def cancel(conn: Connection) -> Any:
            return await self._fetchval(conn, statement, id=job_id, now=now)

        job_type = await self._db.run(cancel)
        if job_type is None:
            return False
        self._publish(
            lambda: [(job_id, "cancelled", "cancelled", now, None, job_type, None, None, None)]
        )
        return True

    async def retry_job(self, job_id: int, now: float) -> bool:
        """failed/cancelled -> pending now, unless an active job holds the same pair."""
        statement = sql.retry_job_sql(history=self._history, notify=self._settings.listen)

        async def retry(conn: Connection) -> Any:
            try:
                return await self._fetchval(
                    conn, statement, id=job_id, now=now, channel=self._channel
                )
            except asyncpg.UniqueViolationError:
                return None

        job_type = await self._db.run(retry)
        if job_type is None:
            return False
        self._publish(
            lambda: [(job_id, "retried", "pending", now, None, job_type, None, now, None)]
        )
        return True

    async def delete_finished_jobs(self, finished_before: float) -> int:
        """Delete completed/cancelled jobs finished before ``finished_before``, with history."""

        async def delete(conn: Connection) -> Any:
            return await self._fetchval(conn, sql.DELETE_FINISHED_JOBS, before=finished_before)

        return int(await self._db.run(delete))

    def watch_changes(self, callback: Callable[[], None]) -> Callable[[], None]:
        """LISTEN on the queue's channel on a connection of its own (nothing with
        ``listen=False``: workers then poll)."""
        if not self._settings.listen:
            return lambda: None
        listener = Listener(
            self._url, self._channel, callback, self._db.server_settings, self._db.server_pids
        )
        listener.start()
        return listener.close

    # -- workers -------------------------------------------------------------------------

    async def heartbeat_worker(self, worker: WorkerRecord) -> None:
        """Upsert the worker's row with a fresh heartbeat and counters."""

        async def upsert(conn: Connection) -> None:
            await self._execute(
                conn,
                sql.UPSERT_WORKER,
                worker_id=worker.worker_id,
                host=worker.host,
                pid=worker.pid,
                started_at=worker.started_at,
                last_heartbeat=worker.last_heartbeat,
                heartbeat_interval=worker.heartbeat_interval,
                jobs_processed=worker.jobs_processed,
                jobs_failed=worker.jobs_failed,
            )

        await self._db.run(upsert)

    async def unregister_worker(self, worker_id: str) -> None:
        """Delete the worker's row."""

        async def delete(conn: Connection) -> None:
            await self._execute(conn, sql.DELETE_WORKER, worker_id=worker_id)

        await self._db.run(delete)

    async def prune_workers(self, now: float) -> int:
        """Delete rows of workers no longer alive."""

        async def prune(conn: Connection) -> Any:
            return await self._fetchval(conn, sql.PRUNE_WORKERS, now=now)

        return int(await self._db.run(prune))

    # -- reads -------------------------------------------------------------------------

    async def earliest_ready(self, job_types: tuple[str, ...] | None) -> float | None:
        """The earliest due time of a ready job of these types, on a pooled connection (an
        idle worker's probe must not queue behind its own exchanges)."""
        params: dict[str, Any] = {} if job_types is None else {"job_types": list(job_types)}
        statement = sql.EARLIEST_READY[job_types is not None]

        async def read(conn: Connection) -> Any:
            return await self._fetchval(conn, statement, **params)

        value = await self._db.run(read)
        return due_time(value)

    async def get_job(self, job_id: int) -> Job | None:
        """One job, or None."""

        async def read(conn: Connection) -> list[Any]:
            return await self._fetch(conn, sql.SELECT_JOB, id=job_id)

        rows = await self._db.run(read)
        return Job.from_row(rows[0]) if rows else None

    async def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """Several jobs in one query (a primary-key lookup each)."""
        ids = list(job_ids)

        async def read(conn: Connection) -> list[Any]:
            return await self._fetch(conn, sql.SELECT_JOBS, ids=ids)

        return [Job.from_row(row) for row in await self._db.run(read)]

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
        """Jobs matching the filters, newest first, below ``before_id`` when given."""
        statement = sql.list_jobs_sql(
            statuses is not None,
            job_type is not None,
            by_target=target_id is not None,
            by_error=error_message is not None,
            before=before_id is not None,
        )
        params: dict[str, Any] = {"limit": limit}
        if statuses is not None:
            params["statuses"] = [s.value for s in statuses]
        optional = {
            "job_type": job_type,
            "target_id": target_id,
            "error_message": error_message,
            "before_id": before_id,
        }
        params.update({name: value for name, value in optional.items() if value is not None})

        async def read(conn: Connection) -> list[Any]:
            return await self._fetch(conn, statement, **params)

        return [Job.from_row(row) for row in await self._db.run(read)]

    async def failed_groups(self, limit: int) -> list[tuple[str, str, int, int, float | None]]:
        """Failed jobs grouped by error and type, largest group first."""

        async def read(conn: Connection) -> list[Any]:
            return await self._fetch(conn, sql.FAILED_GROUPS, limit=limit)

        return [
            (row[0], row[1], int(row[2]), int(row[3]), row[4]) for row in await self._db.run(read)
        ]

    async def finished_by_bucket(
        self, since: float, bucket_seconds: float
    ) -> list[tuple[int, int, int]]:
        """Completed and failed jobs per bucket since ``since``, in one statement."""

        async def read(conn: Connection) -> list[Any]:
            return await self._fetch(
                conn, sql.FINISHED_BY_BUCKET, since=since, bucket=bucket_seconds
            )

        return [(int(row[0]), int(row[1]), int(row[2])) for row in await self._db.run(read)]

    async def get_job_history(self, job_id: int) -> list[EventRow]:
        """Every recorded transition of one job, oldest first."""

        async def read(conn: Connection) -> list[Any]:
            return await self._fetch(conn, sql.SELECT_JOB_EVENTS, id=job_id)

        return [(*row, None) for row in await self._db.run(read)]

    async def queue_stats(self, now: float) -> QueueStats:
        """Counts from one statement, so they add up."""

        async def read(conn: Connection) -> list[Any]:
            return await self._fetch(conn, sql.QUEUE_STATS, now=now)

        counts_json, delayed, workers = (await self._db.run(read))[0]
        counts: dict[str, int] = json.loads(counts_json)
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

    async def read_metrics(self, now: float, window: float) -> MetricsRows:
        """The raw figures of ``get_metrics``, read in one snapshot."""
        return await self._db.run(lambda conn: read_metrics_rows(conn, self._schema, now, window))

    # -- maintenance ---------------------------------------------------------------------

    async def integrity_problems(self) -> list[str]:
        """Missing tables, a schema of another version, invalid indexes ([] if none)."""
        return await self._db.run(lambda conn: maintenance.integrity_problems(conn, self._schema))

    async def checkpoint(self) -> CheckpointResult:
        """Not on PostgreSQL: the server checkpoints on its own."""
        raise maintenance.unsupported("checkpoint", self.path)

    async def vacuum(self) -> VacuumResult:
        """``VACUUM (ANALYZE)`` of the queue's tables."""
        return await self._db.run(lambda conn: maintenance.vacuum(conn, self._schema))

    async def analyze(self) -> None:
        """``ANALYZE`` of the queue's tables."""
        await self._db.run(lambda conn: maintenance.analyze(conn, self._schema))

    async def backup(self, destination: str, *, overwrite: bool) -> BackupResult:
        """Not here on PostgreSQL: ``pg_dump`` does it."""
        raise maintenance.unsupported("backup", self.path, schema=self._schema)

    async def restore(self, source: str) -> RestoreResult:
        """Not here on PostgreSQL: ``pg_restore`` does it."""
        raise maintenance.unsupported("restore", self.path, schema=self._schema)

    async def list_workers(self, now: float) -> list[WorkerInfo]:
        """Every row of the workers table, with whether it is alive at ``now``."""

        async def read(conn: Connection) -> list[Any]:
            return await self._fetch(conn, sql.SELECT_WORKERS, now=now)

        return [maintenance.worker_info(row) for row in await self._db.run(read)]

    async def counts_by_type(self) -> dict[str, dict[str, int]]:
        """Job counts by job type, then by status."""

        async def read(conn: Connection) -> list[Any]:
            return await self._fetch(conn, sql.COUNT_BY_TYPE_AND_STATUS)

        counts: dict[str, dict[str, int]] = {}
        for job_type, status, count in await self._db.run(read):
            counts.setdefault(job_type, {})[status] = count
        return counts

    async def failed_job_ids(self, job_type: str | None) -> list[int]:
        """Ids of every failed job (of ``job_type`` only, if given), oldest first."""

        async def read(conn: Connection) -> list[Any]:
            if job_type is None:
                return await self._fetch(conn, sql.SELECT_FAILED_IDS)
            return await self._fetch(conn, sql.SELECT_FAILED_IDS_OF_TYPE, job_type=job_type)

        return [row[0] for row in await self._db.run(read)]


def _arrays(batch: Sequence[tuple[NewJob, float]]) -> dict[str, Any]:
    """The insert statement's parameters: an array per column, or for a column whose value
    is the same throughout, an empty array and that value (``each_...``)."""
    params: dict[str, Any] = {
        "job_types": [job.job_type for job, _ in batch],
        "target_ids": [job.target_id for job, _ in batch],
    }
    columns: dict[str, tuple[str, list[Any]]] = {
        "priorities": ("each_priority", [job.priority for job, _ in batch]),
        "max_retries": ("each_max_retries", [job.max_retries for job, _ in batch]),
        "metadata": ("each_metadata", [job.metadata_json for job, _ in batch]),
        "created_at": ("each_created_at", [at for _, at in batch]),
        "run_at": ("each_run_at", [job.run_at for job, _ in batch]),
    }
    for name, (each, values) in columns.items():
        if values and values.count(values[0]) == len(values):
            params[name], params[each] = [], values[0]
        else:
            params[name], params[each] = values, None
    return params


def _outcome_keys(finished: Sequence[FinishedJob]) -> dict[str, list[Any]]:
    return {
        "ids": [f.job_id for f in finished],
        "tokens": [f.token for f in finished],
        "statuses": [f.status.value for f in finished],
    }


def _outcome_params(finished: Sequence[FinishedJob]) -> dict[str, list[Any]]:
    return {
        **_outcome_keys(finished),
        "run_ats": [f.run_at for f in finished],
        "errors": [f.error for f in finished],
        "retried": [int(f.counts_retry) for f in finished],
        "results": [f.result_json for f in finished],
    }
