"""What only the PostgreSQL backend has: URLs, schemas, migrations under an advisory lock,
transactional enqueue, LISTEN/NOTIFY wake-ups and surviving lost connections.

The behaviour both backends share is tested once, in the other modules, on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import PG_URL, drop_schema
from support import Recording, query, wait_for_status, wait_until

from asyncqueue import (
    AsyncQueueError,
    ConfigurationError,
    DatabaseBusyError,
    DatabaseOpenError,
    JobQueue,
    JobStatus,
    ManualClock,
    QueueClosedError,
    QueueWorker,
    SchemaVersionError,
)
from asyncqueue.config import redacted, resolve_settings

pytestmark = pytest.mark.postgres_only


@pytest.fixture
async def app_conn(db_path: str) -> AsyncIterator[Any]:
    """The application's own asyncpg connection."""
    conn = await asyncpg.connect(db_path)
    yield conn
    await conn.close()


def test_urls_select_postgres_and_stay_as_given(backend: str) -> None:
    for url in ("postgresql://u:secret@h:5/db", "postgres://u@h/db?sslmode=disable"):
        settings = resolve_settings({"path": url})
        assert settings.path == url
        assert settings.is_postgres
        assert JobQueue(url).backend == "postgres"
    assert "secret" not in repr(JobQueue("postgresql://u:secret@h:5/db"))
    assert JobQueue("relative/queue.db").backend == "sqlite"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@h:5/db", "postgresql://u:***@h:5/db"),
        ("postgresql://u:secret@h:nope/db", "postgresql://u:***@h:nope/db"),
        ("postgresql://u:secret@h1:5,h2:6/db", "postgresql://u:***@h1:5,h2:6/db"),
        ("postgresql://u:secret@[::1]:5/db", "postgresql://u:***@[::1]:5/db"),
        ("postgresql://u:sec@ret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?sslmode=disable&password=secret", None),
        ("postgres://u@h/db?sslmode=disable", "postgres://u@h/db?sslmode=disable"),
    ],
)
def test_redacted_hides_every_password(backend: str, url: str, shown: str | None) -> None:
    assert "secret" not in redacted(url)
    assert "ret@" not in redacted(url)
    if shown is not None:
        assert redacted(url) == shown


async def test_queue_db_path_may_be_a_url(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_DB_PATH", db_path)
    async with JobQueue() as queue:
        assert queue.backend == "postgres"
        assert (await queue.enqueue("t", "env")).created


@pytest.mark.parametrize(
    "schema", ["", "1abc", "a-b", "x" * 64, 'a"b', "pg_catalog", "pg_queue", "information_schema"]
)
def test_a_schema_must_be_an_identifier(backend: str, schema: str) -> None:
    with pytest.raises(ConfigurationError, match="schema"):
        JobQueue(PG_URL, schema=schema)


async def test_the_schema_setting_keeps_queues_apart(db_path: str) -> None:
    other = f"aq_test_{uuid.uuid4().hex[:12]}"
    try:
        async with JobQueue(db_path) as first, JobQueue(db_path, schema=other) as second:
            await first.enqueue("t", "a")
            assert (await second.get_queue_stats()).total_jobs == 0
            assert (await second.enqueue("t", "a")).created
    finally:
        drop_schema(other)


async def test_many_queues_opening_at_once_migrate_once(db_path: str) -> None:
    queues = [JobQueue(db_path) for _ in range(8)]
    await asyncio.gather(*(q.open() for q in queues))
    assert query(db_path, "SELECT count(*) FROM schema_version") == [(1,)]
    for q in queues:
        await q.close()


async def test_a_schema_newer_than_the_library_is_refused(db_path: str) -> None:
    async with JobQueue(db_path):
        pass
    query(db_path, "UPDATE schema_version SET version = version + 1")
    with pytest.raises(SchemaVersionError, match="newer"):
        await JobQueue(db_path).open()


async def test_an_unreachable_server_raises_database_open_error(backend: str) -> None:
    from asyncqueue import DatabaseOpenError

    queue = JobQueue("postgresql://nobody:pw@127.0.0.1:1/none")
    with pytest.raises(DatabaseOpenError, match="cannot connect") as info:
        await queue.open()
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:secret@127.0.0.1:nope/postgres",
        "postgresql://postgres@127.0.0.1/postgres?password=secret&sslmode=bogus",
    ],
)
async def test_a_malformed_url_fails_at_once_without_its_password(backend: str, url: str) -> None:
    """A bad port or option is no connection failure: no retrying, no password shown."""
    from asyncqueue import DatabaseOpenError

    started = asyncio.get_running_loop().time()
    with pytest.raises(DatabaseOpenError, match="cannot connect") as info:
        await JobQueue(url).open()
    assert asyncio.get_running_loop().time() - started < 2.0
    assert "secret" not in str(info.value)


# -- transactional enqueue -----------------------------------------------------------------


async def test_an_enqueue_in_a_committed_transaction_exists(queue: JobQueue, app_conn: Any) -> None:
    async with app_conn.transaction():
        job_id = await queue.enqueue("email", "u1", connection=app_conn)
        ids = await queue.enqueue_many(
            [{"job_type": "email", "target_id": "u2"}, {"job_type": "email", "target_id": "u1"}],
            connection=app_conn,
        )
        assert job_id.created
        assert ids[0].created
        assert not ids[1].created
        assert ids[1] == job_id
        # Not visible outside the transaction yet.
        assert await queue.get_job(job_id) is None
    assert (await queue.get_job(job_id)) is not None
    assert (await queue.get_queue_stats()).pending_jobs == 2
    assert [e.event for e in await queue.get_job_history(job_id)] == ["enqueued"]


async def test_an_enqueue_in_a_rolled_back_transaction_never_exists(
    queue: JobQueue, app_conn: Any
) -> None:
    transaction = app_conn.transaction()
    await transaction.start()
    job_id = await queue.enqueue("email", "u1", connection=app_conn)
    await queue.enqueue_many([{"job_type": "email", "target_id": "u2"}], connection=app_conn)
    await transaction.rollback()
    assert await queue.get_job(job_id) is None
    assert (await queue.get_queue_stats()).total_jobs == 0
    assert (await queue.enqueue("email", "u1")).created


async def test_connection_must_be_an_asyncpg_connection(queue: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="asyncpg"):
        await queue.enqueue("t", "a", connection=object())


async def test_a_closed_or_aborted_app_connection_is_a_clear_error(
    queue: JobQueue, db_path: str
) -> None:
    from asyncqueue import DatabaseError

    closed = await asyncpg.connect(db_path)
    await closed.close()
    with pytest.raises(ConfigurationError, match="closed"):
        await queue.enqueue("t", "a", connection=closed)
    with pytest.raises(ConfigurationError, match="closed"):
        await queue.enqueue_many([{"job_type": "t", "target_id": "b"}], connection=closed)
    conn = await asyncpg.connect(db_path)
    try:
        transaction = conn.transaction()
        await transaction.start()
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.execute("SELECT 1 / 0")
        with pytest.raises(DatabaseError, match="aborted"):
            await queue.enqueue("t", "c", connection=conn)
        await transaction.rollback()
    finally:
        await conn.close()
    assert (await queue.get_queue_stats()).total_jobs == 0


async def test_connection_on_sqlite_is_a_configuration_error(tmp_path: Path) -> None:
    async with JobQueue(tmp_path / "q.db") as queue:
        with pytest.raises(ConfigurationError, match="PostgreSQL"):
            await queue.enqueue("t", "a", connection=object())
        with pytest.raises(ConfigurationError, match="PostgreSQL"):
            await queue.enqueue_many([{"job_type": "t", "target_id": "a"}], connection=object())
        assert (await queue.get_queue_stats()).total_jobs == 0


# -- wake-ups ---------------------------------------------------------------------------------


async def test_a_notify_from_another_queue_wakes_an_idle_worker(db_path: str) -> None:
    """The worker polls once an hour: only NOTIFY can wake it in time."""
    async with JobQueue(db_path) as here, JobQueue(db_path) as there:
        worker = Recording(here, poll_interval=3600)
        task = asyncio.create_task(worker.start())
        await asyncio.sleep(0.3)  # idle, listening
        job_id = await there.enqueue("t", "from-elsewhere")
        await wait_for_status(here, job_id, JobStatus.COMPLETED)
        await worker.stop()
        await task


async def test_a_committed_transactional_enqueue_wakes_a_worker(
    db_path: str, app_conn: Any
) -> None:
    async with JobQueue(db_path) as queue:
        worker = Recording(queue, poll_interval=3600)
        task = asyncio.create_task(worker.start())
        await asyncio.sleep(0.3)
        async with app_conn.transaction():
            job_id = await queue.enqueue("t", "in-tx", connection=app_conn)
        await wait_for_status(queue, job_id, JobStatus.COMPLETED)
        await worker.stop()
        await task


async def test_without_listen_workers_poll(db_path: str, pg_schema: str, app_conn: Any) -> None:
    """listen=False (PgBouncer transaction pooling): no LISTEN connection, no NOTIFY sent."""
    heard: list[str] = []
    await app_conn.add_listener(f"asyncqueue_{pg_schema}", lambda *args: heard.append(args[3]))
    async with JobQueue(db_path, listen=False) as here:
        worker = Recording(here, poll_interval=0.05)
        task = asyncio.create_task(worker.start())
        await asyncio.sleep(0.3)
        listening = await app_conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
            "AND query ILIKE 'LISTEN%'",
            f"asyncqueue:{pg_schema}",
        )
        assert listening == 0
        job_id = await here.enqueue("t", "polled")
        (other_id,) = await here.enqueue_many([{"job_type": "t", "target_id": "polled-too"}])
        await wait_for_status(here, job_id, JobStatus.COMPLETED)
        await wait_for_status(here, other_id, JobStatus.COMPLETED)
        await worker.stop()
        await task
        # A manual retry makes a job pending again: no NOTIFY for it either.
        parked = await here.enqueue("t", "cancelled-then-retried", delay=3600)
        assert await here.cancel_job(parked)
        assert await here.retry_job(parked)
        await asyncio.sleep(0.1)  # a NOTIFY would have arrived by now
        assert heard == []
        assert sorted(worker.ran) == ["polled", "polled-too"]


# -- lost connections -------------------------------------------------------------------------


async def terminate_backends(db_path: str, schema: str) -> int:
    """Kill every server connection of this test's queues (named for its schema)."""
    conn = await asyncpg.connect(db_path)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                f"asyncqueue:{schema}",
            )
        )
    finally:
        await conn.close()


class Slow(QueueWorker):
    def __init__(self, queue: JobQueue, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.ran: list[str] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        await asyncio.sleep(0.002)
        self.ran.append(target_id)
        return True


async def test_a_worker_survives_its_connections_being_terminated(
    db_path: str, pg_schema: str
) -> None:
    """Every server connection killed several times mid-run: no job lost or run twice."""
    targets = [f"j{i}" for i in range(600)]
    async with JobQueue(db_path) as queue:
        await queue.enqueue_many([{"job_type": "t", "target_id": t} for t in targets])
        worker = Slow(queue, concurrency=8)
        task = asyncio.create_task(worker.start())
        killed = 0
        for _ in range(4):
            await asyncio.sleep(0.15)
            killed += await terminate_backends(db_path, pg_schema)
        # Enqueues and reads go on through reconnects too.
        late = await queue.enqueue("t", "late")

        async def drained() -> bool:
            return (await queue.get_queue_stats()).completed_jobs == len(targets) + 1

        await wait_until(drained, "every job to complete", timeout=60)
        await worker.stop()
        await task
        assert killed > 0
        assert sorted(worker.ran) == sorted([*targets, "late"])
        assert (await queue.get_job(late)) is not None


def _restartable_server() -> list[str] | None:
    """The command that restarts the test server, when it is this machine's own cluster and
    we may restart it (root, pg_ctlcluster); None otherwise."""
    clusters = Path("/etc/postgresql")
    if (
        "ASYNCQUEUE_PG_URL" in os.environ
        or not hasattr(os, "geteuid")
        or os.geteuid() != 0
        or not shutil.which("pg_ctlcluster")
        or not clusters.is_dir()
    ):
        return None
    versions = sorted(p.name for p in clusters.iterdir() if (p / "main").is_dir())
    if len(versions) != 1:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "restart"]


@pytest.mark.skipif(
    _restartable_server() is None,
    reason="needs the local cluster and root to restart it (pg_ctlcluster)",
)
async def test_a_worker_survives_a_server_restart(db_path: str, pg_schema: str) -> None:
    """The real thing, not killed connections: the server shuts down (fast mode, every
    session ended) and comes back while a worker runs and a producer enqueues. No job or
    result is lost and none runs twice; the worker keeps running."""
    restart = _restartable_server()
    assert restart is not None
    before = [f"before-{i}" for i in range(3000)]
    async with JobQueue(db_path) as queue:
        await queue.enqueue_many([{"job_type": "t", "target_id": t} for t in before])
        worker = Slow(queue, concurrency=8)
        task = asyncio.create_task(worker.start())
        await wait_until(lambda: _ran_some(worker), "the worker to start on the jobs")
        started_at = await _server_started_at(db_path)
        ran_before_restart = len(worker.ran)
        restarting = asyncio.create_task(asyncio.to_thread(subprocess.run, restart, check=True))
        # Enqueues while the server goes down and comes back: retried, none lost.
        during = [await queue.enqueue("t", f"during-{i}") for i in range(20)]
        await restarting
        after = await queue.enqueue("t", "after")
        assert await _server_started_at(db_path) > started_at, "the server restarted"
        assert ran_before_restart < len(before), "the restart came while the worker ran"

        async def drained() -> bool:
            stats = await queue.get_queue_stats()
            return stats.completed_jobs == len(before) + len(during) + 1

        await wait_until(drained, "every job to complete", timeout=60)
        assert not task.done(), "the worker survived the restart"
        await worker.stop()
        await task
        assert sorted(worker.ran) == sorted([*before, *(f"during-{i}" for i in range(20)), "after"])
        assert (await queue.get_job(after)) is not None


async def _server_started_at(db_path: str) -> Any:
    conn = await asyncpg.connect(db_path)
    try:
        return await conn.fetchval("SELECT pg_postmaster_start_time()")
    finally:
        await conn.close()


async def _ran_some(worker: Slow) -> bool:
    return len(worker.ran) >= 20


async def queue_connections(db_path: str, schema: str) -> int:
    conn = await asyncpg.connect(db_path)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                f"asyncqueue:{schema}",
            )
        )
    finally:
        await conn.close()


async def test_lone_enqueues_go_on_after_their_pinned_connection_is_killed(
    db_path: str, pg_schema: str
) -> None:
    """A lone enqueue runs on a connection held out of the pool: killing it loses nothing."""
    queue = JobQueue(db_path, listen=False)
    await queue.open()
    before = [await queue.enqueue("t", f"before-{n}") for n in range(3)]
    for round_ in range(3):
        assert await terminate_backends(db_path, pg_schema) > 0
        job_id = await queue.enqueue("t", f"after-{round_}")
        assert job_id.created
        assert (await queue.get_job(job_id)) is not None
    assert (await queue.get_queue_stats()).pending_jobs == len(before) + 3
    # Closing hands the pinned connection back to the pool first: a pool closing with a
    # connection still out waits 10 s for it, then kills it.
    async with asyncio.timeout(5):
        await queue.close()
    assert await queue_connections(db_path, pg_schema) == 0


async def test_a_cancelled_lone_enqueue_commits_whole_or_not_at_all(
    db_path: str, pg_schema: str
) -> None:
    async with JobQueue(db_path, listen=False) as queue:
        await queue.enqueue("t", "warm")
        for n in range(20):
            task = asyncio.create_task(queue.enqueue("t", f"cancelled-{n}"))
            await asyncio.sleep(0.0002 * n)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert (await queue.enqueue("t", "after")).created
        jobs = await queue.list_jobs(limit=100)
        targets = [job.target_id for job in jobs]
        assert len(targets) == len(set(targets))
        assert "after" in targets
        assert "warm" in targets
    assert await queue_connections(db_path, pg_schema) == 0


async def test_the_listener_reconnects_and_listens_again(db_path: str, pg_schema: str) -> None:
    """After its connection is killed, NOTIFY still wakes a worker that never polls."""
    async with JobQueue(db_path) as here, JobQueue(db_path, schema=pg_schema) as there:
        worker = Recording(here, poll_interval=3600)
        task = asyncio.create_task(worker.start())
        await asyncio.sleep(0.3)
        assert await terminate_backends(db_path, pg_schema) > 0
        await asyncio.sleep(0.5)  # reconnected (the first retry waits 50 ms)
        job_id = await there.enqueue("t", "after-the-cut")
        await wait_for_status(there, job_id, JobStatus.COMPLETED)
        await worker.stop()
        await task


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


async def test_a_read_after_the_server_dropped_the_pool_reconnects(
    db_path: str, pg_schema: str, manual_clock: ManualClock
) -> None:
    async with JobQueue(db_path, clock=manual_clock) as queue:
        job_id = await queue.enqueue("t", "a")
        await terminate_backends(db_path, pg_schema)
        assert (await queue.get_job(job_id)) is not None
        assert (await queue.enqueue("t", "b")).created
        assert os.environ["QUEUE_DB_SCHEMA"] == pg_schema


async def test_a_cancelled_call_drops_only_its_own_connection(
    db_path: str, pg_schema: str, app_conn: Any
) -> None:
    """A caller's timeout mid-statement must not expire the rest of the pool."""

    async def backends() -> set[int]:
        found = await app_conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            f"asyncqueue:{pg_schema}",
        )
        return {row[0] for row in found}

    async with JobQueue(db_path) as queue:
        job_id = await queue.enqueue("t", "locked")
        await asyncio.gather(*(queue.get_queue_stats() for _ in range(6)))
        before = await backends()
        assert len(before) > 1
        transaction = app_conn.transaction()
        await transaction.start()
        await app_conn.execute(f'SELECT 1 FROM "{pg_schema}".jobs WHERE id = $1 FOR UPDATE', job_id)
        blocked = asyncio.create_task(queue.cancel_job(job_id))

        async def waiting() -> bool:
            return bool(
                await app_conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                    "AND wait_event_type = 'Lock'",
                    f"asyncqueue:{pg_schema}",
                )
            )

        await wait_until(waiting, "the cancel to wait for the row lock")
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        await transaction.rollback()
        await asyncio.gather(*(queue.get_queue_stats() for _ in range(6)))
        kept = before & await backends()
        assert len(kept) >= len(before) - 1
        # The server may still have run the abandoned statement: its outcome is unknown.
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.status in (JobStatus.PENDING, JobStatus.CANCELLED)


async def test_an_exchange_whose_answer_was_lost_is_neither_lost_nor_applied_twice(
    queue: JobQueue,
) -> None:
    """The exchange commits, then its connection dies before the answer arrives: the retry
    learns what the lost try did (its outcomes and its claims) instead of doing it again."""
    from asyncqueue.storage.postgres import PostgresStorage

    ids = [
        int(i)
        for i in await queue.enqueue_many(
            [{"job_type": "t", "target_id": f"j{n}", "priority": 1 + n} for n in range(6)]
        )
    ]
    held = await queue.claim("A", limit=2)
    storage = queue._storage
    assert isinstance(storage, PostgresStorage)
    real_fetch = storage._fetch
    lost: list[list[Any]] = []

    async def fetch(conn: Any, statement: str, **params: Any) -> list[Any]:
        found = await real_fetch(conn, statement, **params)
        if "claimed AS" in statement and not lost:
            lost.append(found)
            raise asyncpg.ConnectionDoesNotExistError("the answer was lost")
        return found

    storage._fetch = fetch  # type: ignore[method-assign]
    outcomes = [queue.outcome(held[0], None), queue.outcome(held[1], "boom")]
    applied, claimed = await queue.finish_and_claim(outcomes, worker_id="A", limit=2)
    assert lost, "the exchange ran"
    assert applied == {held[0].id, held[1].id}
    lost_claims = sorted(row[1] for row in lost[0] if row[0])
    assert [j.id for j in claimed] == lost_claims == ids[2:4]
    processing = await queue.list_jobs(status=JobStatus.PROCESSING)
    assert sorted(j.id for j in processing) == lost_claims
    done = await queue.get_job(held[0].id)
    assert done is not None
    assert done.status is JobStatus.COMPLETED
    assert done.lease_token == held[0].lease_token
    events = [e.event for e in await queue.get_job_history(held[0].id)]
    assert events == ["enqueued", "claimed", "completed"]
    retried = await queue.get_job(held[1].id)
    assert retried is not None
    assert (retried.status, retried.retry_count) == (JobStatus.RETRY_SCHEDULED, 1)


async def test_a_burst_of_enqueues_notifies_less_and_still_wakes_a_worker(
    db_path: str, pg_schema: str, app_conn: Any
) -> None:
    """Debounced NOTIFY: the trailing one follows the burst's last commit."""
    heard: list[str] = []
    await app_conn.add_listener(f"asyncqueue_{pg_schema}", lambda *args: heard.append(args[3]))
    async with JobQueue(db_path) as here, JobQueue(db_path) as there:
        worker = Recording(here, poll_interval=3600)
        task = asyncio.create_task(worker.start())
        await asyncio.sleep(0.3)
        ids = [await there.enqueue("t", f"burst-{n}") for n in range(30)]
        await asyncio.sleep(0.05)
        assert 1 <= len(heard) < 30
        for job_id in ids:
            await wait_for_status(there, job_id, JobStatus.COMPLETED)
        await worker.stop()
        await task
        assert sorted(worker.ran) == sorted(f"burst-{n}" for n in range(30))


async def test_an_enqueue_on_a_pooled_app_connection(queue: JobQueue, db_path: str) -> None:
    pool = await asyncpg.create_pool(db_path, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            job_id = await queue.enqueue("t", "pooled", connection=conn)
        assert (await queue.get_job(job_id)) is not None
    finally:
        await pool.close()


def test_deadlocks_are_retried_without_dropping_the_connection() -> None:
    """Deadlocks and serialisation failures are retried, but they leave the connection
    usable: only a lost connection is dropped (and the pool's others expired)."""
    from asyncqueue.storage.postgres_connection import is_connection_lost, is_transient

    for exc in (asyncpg.DeadlockDetectedError(), asyncpg.SerializationError()):
        assert is_transient(exc)
        assert not is_connection_lost(exc)
    for exc in (ConnectionResetError(), asyncpg.ConnectionDoesNotExistError()):
        assert is_transient(exc)
        assert is_connection_lost(exc)
    assert not is_connection_lost(asyncpg.UniqueViolationError())


async def test_closing_while_a_lone_enqueue_is_in_flight_neither_hangs_nor_loses_it(
    db_path: str, pg_schema: str
) -> None:
    """The pinned connection, busy as the queue closes, goes back to the closing pool."""
    for turns in range(4):
        queue = JobQueue(db_path, listen=False)
        await queue.open()
        await queue.enqueue("t", f"warm-{turns}")
        task = asyncio.create_task(queue.enqueue("t", f"in-flight-{turns}"))
        for _ in range(turns):
            await asyncio.sleep(0)
        async with asyncio.timeout(5):  # a connection never handed back holds close 10 s
            await queue.close()
        outcome = await asyncio.gather(task, return_exceptions=True)
        async with JobQueue(db_path) as check:
            stored = [job.id for job in await check.list_jobs(limit=100)]
        if isinstance(outcome[0], int):
            assert outcome[0] in stored  # an id handed out is a committed job
        else:
            assert isinstance(outcome[0], AsyncQueueError | asyncio.CancelledError)
    assert await queue_connections(db_path, pg_schema) == 0


async def test_a_failed_statement_that_was_to_carry_the_notify_leaves_it_owed(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs committed without a NOTIFY stay owed one when the statement that took over the
    debt (the next interval's first) fails: nothing else would announce them."""
    from asyncqueue.storage import postgres as pg_storage
    from asyncqueue.storage.postgres_notify import NotifyDebouncer

    now = [0.0]
    async with JobQueue(db_path) as queue:
        storage = queue._storage
        debouncer = NotifyDebouncer(
            storage._notify,
            clock=lambda: now[0],
            call_later=lambda delay, callback: asyncio.get_running_loop().call_later(
                3600, callback
            ),
        )
        storage._notifier = debouncer
        await queue.enqueue("t", "leading")  # carries a NOTIFY
        now[0] = 0.001
        await queue.enqueue("t", "owing")  # committed without one
        assert debouncer._owed
        original = pg_storage.PostgresStorage._insert_on

        async def refused(storage: Any, conn: Any, batch: Any, **kwargs: Any) -> Any:
            raise asyncpg.CheckViolationError("refused")

        monkeypatch.setattr(pg_storage.PostgresStorage, "_insert_on", refused)
        now[0] = 0.006  # the next interval: this statement takes the debt over, then fails
        with pytest.raises(AsyncQueueError):
            await queue.enqueue("t", "fails")
        assert debouncer._owed
        monkeypatch.setattr(pg_storage.PostgresStorage, "_insert_on", original)


async def test_a_password_in_the_url_is_never_shown(
    db_path: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Trust auth here takes any password: the URL carries one, and no message, log line or
    CLI output may show it."""
    url = db_path.replace("postgres@", "postgres:TopSecretPw@", 1)
    assert "TopSecretPw" in url
    queue = JobQueue(url)
    async with queue:
        await queue.enqueue("t", "x")
    with pytest.raises(QueueClosedError) as closed:
        await queue.enqueue("t", "y")
    assert "TopSecretPw" not in str(closed.value)
    assert "***" in str(closed.value)
    for args in (["stats"], ["stats", "--json"], ["jobs"], ["db", "check"]):
        result = subprocess.run(
            [sys.executable, "-m", "asyncqueue", "--db", url, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )
        assert result.returncode == 0, result.stderr
        assert "TopSecretPw" not in result.stdout + result.stderr


async def test_a_port_out_of_range_is_a_database_open_error(backend: str) -> None:
    with pytest.raises(DatabaseOpenError) as raised:
        await JobQueue("postgresql://u:pw@127.0.0.1:99999/db").open()
    assert "pw@" not in str(raised.value)


async def test_a_schema_holding_another_apps_jobs_table_is_refused_untouched(
    db_path: str, pg_schema: str, app_conn: Any
) -> None:
    await app_conn.execute(f"CREATE SCHEMA {pg_schema}")
    await app_conn.execute(f"CREATE TABLE {pg_schema}.jobs (id int, name text)")
    await app_conn.execute(f"INSERT INTO {pg_schema}.jobs VALUES (1, 'theirs')")
    with pytest.raises(DatabaseOpenError, match=f"schema '{pg_schema}' is not a usable"):
        await JobQueue(db_path).open()
    assert await app_conn.fetchval(f"SELECT name FROM {pg_schema}.jobs") == "theirs"


async def test_a_serialization_failure_in_the_apps_transaction_says_to_retry_it(
    queue: JobQueue, app_conn: Any
) -> None:
    """REPEATABLE READ: the pair is committed elsewhere after the app's snapshot."""
    await queue.enqueue("t", "warm")  # the schema exists before the snapshot
    async with app_conn.transaction(isolation="repeatable_read"):
        await app_conn.fetchval("SELECT 1")  # takes the snapshot
        await queue.enqueue("t", "pair")
        with pytest.raises(DatabaseBusyError, match="retry the transaction"):
            await queue.enqueue("t", "pair", connection=app_conn)
