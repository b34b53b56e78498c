"""enqueue_many on both backends: every item's own values, item order, duplicates of every
kind, and (PostgreSQL) the plain-insert-first path and its fallback."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support import query

from asyncqueue import JobEventType, JobQueue, JobStatus, ManualClock
from asyncqueue.storage import postgres as pg_storage
from asyncqueue.storage import postgres_sql


def items(prefix: str, count: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"job_type": "t", "target_id": f"{prefix}-{n}", **fields} for n in range(count)]


async def test_every_item_keeps_its_own_values(queue: JobQueue, clock: ManualClock) -> None:
    """Values that differ between items, and values the whole batch shares, both round-trip."""
    varied = [
        {
            "job_type": f"type-{n % 3}",
            "target_id": f"v-{n}",
            "priority": 1 + n % 10,
            "max_retries": n % 4,
            "metadata": {"n": n} if n % 2 else {},
            "delay": float(n % 5) * 60,
        }
        for n in range(40)
    ]
    uniform = items("u", 40, priority=2, max_retries=7, metadata={"same": True}, delay=30)
    ids = await queue.enqueue_many(varied + uniform)
    assert all(job_id.created for job_id in ids)
    for item, job_id in zip(varied + uniform, ids, strict=True):
        job = await queue.get_job(job_id)
        assert job is not None
        assert (job.job_type, job.target_id, job.priority) == (
            item["job_type"],
            item["target_id"],
            item["priority"],
        )
        assert job.max_retries == item["max_retries"]
        assert job.metadata == item["metadata"]
        assert job.run_at == job.created_at + timedelta(seconds=item["delay"])
        (enqueued,) = await queue.get_job_history(job_id)
        assert enqueued.event is JobEventType.ENQUEUED
        assert enqueued.run_at == job.run_at


async def test_ids_follow_item_order_and_jobs_are_claimed_in_it(queue: JobQueue) -> None:
    ids = await queue.enqueue_many(items("o", 300))
    assert ids == sorted(ids)
    claimed = await queue.claim("w", limit=300)
    assert [job.id for job in claimed] == ids


async def test_an_active_duplicate_in_a_big_batch_is_answered_with_its_id(
    queue: JobQueue,
) -> None:
    existing = await queue.enqueue("t", "d-17")
    ids = await queue.enqueue_many(items("d", 50))
    assert ids[17] == existing
    assert not ids[17].created
    assert all(job_id.created for n, job_id in enumerate(ids) if n != 17)
    assert len(set(ids)) == 50
    # Later batches, with and without duplicates, each get the right answers.
    for round_ in range(12):
        fresh = await queue.enqueue_many(items(f"r{round_}", 20))
        assert all(job_id.created for job_id in fresh)
        again = await queue.enqueue_many(items(f"r{round_}", 20) + items(f"s{round_}", 20))
        assert again[:20] == fresh
        assert not any(job_id.created for job_id in again[:20])
        assert all(job_id.created for job_id in again[20:])
    stats = await queue.get_queue_stats()
    assert stats.total_jobs == 1 + 49 + 12 * 40


async def test_repeats_within_a_batch_create_the_first_item_only(queue: JobQueue) -> None:
    batch = items("x", 30) + items("x", 30, priority=1) + items("y", 5)
    ids = await queue.enqueue_many(batch)
    assert ids[:30] == ids[30:60]
    assert all(job_id.created for job_id in ids[:30])
    assert not any(job_id.created for job_id in ids[30:60])
    assert all(job_id.created for job_id in ids[60:])
    job = await queue.get_job(ids[0])
    assert job is not None
    assert job.priority == 5  # the first item's


async def test_a_duplicate_that_finished_frees_its_pair(queue: JobQueue) -> None:
    done = await queue.enqueue("t", "f-3")
    (claimed,) = await queue.claim("w", limit=1)
    assert await queue.complete(claimed)
    ids = await queue.enqueue_many(items("f", 20))
    assert ids[3] != done
    assert all(job_id.created for job_id in ids)


async def test_concurrent_overlapping_batches_create_each_pair_once(
    db_path: Path | str,
) -> None:
    """Two queue objects (two connections, or two SQLite writers) race on the same pairs."""
    async with JobQueue(db_path) as first, JobQueue(db_path) as second:
        for round_ in range(6):
            batch = items(f"c{round_}", 200)
            a, b = await asyncio.gather(
                first.enqueue_many(batch), second.enqueue_many(list(reversed(batch)))
            )
            b = list(reversed(b))
            assert a == b  # the same id for every pair
            for x, y in zip(a, b, strict=True):
                assert x.created != y.created  # exactly one of the two created it
        assert (await first.get_queue_stats()).total_jobs == 6 * 200


async def test_a_bad_item_writes_nothing_even_in_a_big_batch(queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="item 99"):
        await queue.enqueue_many([*items("bad", 99), {"job_type": "t", "target_id": ""}])
    assert (await queue.get_queue_stats()).total_jobs == 0


# -- PostgreSQL: plain insert first ------------------------------------------------------------


class Statements:
    """Records which insert statement each call ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ran: list[str] = []
        original = pg_storage.PostgresStorage._fetch
        plain = {
            postgres_sql.insert_jobs_sql(history=h, notify=n, skip_duplicates=False)
            for h in (True, False)
            for n in (True, False)
        }
        skipping = {
            make(history=h, notify=n)
            for make in (postgres_sql.insert_jobs_sql, postgres_sql.insert_job_sql)
            for h in (True, False)
            for n in (True, False)
        }

        async def fetch(storage: Any, conn: Any, statement: str, **params: Any) -> Any:
            if statement in plain:
                self.ran.append("plain")
            elif statement in skipping:
                self.ran.append("skip")
            return await original(storage, conn, statement, **params)

        monkeypatch.setattr(pg_storage.PostgresStorage, "_fetch", fetch)

    def take(self) -> list[str]:
        ran, self.ran = self.ran, []
        return ran


@pytest.mark.postgres_only
async def test_a_batch_goes_in_plain_and_falls_back_after_a_duplicate(
    queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = Statements(monkeypatch)
    await queue.enqueue_many(items("a", 20))
    assert statements.take() == ["plain"]
    # Small batches and lone enqueues skip duplicates at once: a failed statement would
    # cost more than the plain insert saves.
    await queue.enqueue_many(items("small", pg_storage.PLAIN_INSERT_FROM - 1))
    await queue.enqueue("t", "lone")
    assert statements.take() == ["skip", "skip"]
    # A duplicate: the plain insert fails whole, the batch goes in skipping it.
    ids = await queue.enqueue_many(items("a", 1) + items("b", 20))
    assert statements.take() == ["plain", "skip"]
    assert not ids[0].created
    assert all(job_id.created for job_id in ids[1:])
    # Then conflict-free batches skip duplicates until enough in a row met none.
    for n in range(pg_storage.PLAIN_INSERT_AFTER):
        await queue.enqueue_many(items(f"c{n}", 20))
    assert statements.take() == ["skip"] * pg_storage.PLAIN_INSERT_AFTER
    await queue.enqueue_many(items("d", 20))
    assert statements.take() == ["plain"]
    small = pg_storage.PLAIN_INSERT_FROM - 1
    assert (await queue.get_queue_stats()).total_jobs == 20 + small + 1 + 20 + 8 * 20 + 20


@pytest.mark.postgres_only
async def test_an_enqueue_in_the_callers_transaction_never_goes_plain(
    queue: JobQueue, monkeypatch: pytest.MonkeyPatch, db_path: str
) -> None:
    """A failed statement would abort the application's transaction."""
    import asyncpg

    existing = await queue.enqueue("t", "tx-3")
    statements = Statements(monkeypatch)
    conn = await asyncpg.connect(db_path)
    try:
        async with conn.transaction():
            ids = await queue.enqueue_many(items("tx", 30), connection=conn)
            assert await conn.fetchval("SELECT 1") == 1  # the transaction is still good
        assert statements.take() == ["skip"]
        assert ids[3] == existing
    finally:
        await conn.close()
    assert (await queue.get_queue_stats()).total_jobs == 30


@pytest.mark.postgres_only
async def test_a_version_1_schema_keeps_its_history_after_migrating(
    db_path: str, pg_schema: str
) -> None:
    """Version 1 wrote the enqueued event to job_events; version 2 reads it from the row."""
    import asyncpg

    conn = await asyncpg.connect(db_path)
    try:
        await conn.execute(f'CREATE SCHEMA "{pg_schema}"')
        await conn.execute(f'SET search_path TO "{pg_schema}"')
        for statement in postgres_sql.MIGRATIONS[1]:
            await conn.execute(postgres_sql.in_schema(statement, pg_schema))
        await conn.execute(postgres_sql.in_schema(postgres_sql.CREATE_VERSION_TABLE, pg_schema))
        await conn.execute("INSERT INTO schema_version VALUES (1)")
        old_id = await conn.fetchval(
            "INSERT INTO jobs (job_type, target_id, created_at, run_at, updated_at) "
            "VALUES ('t', 'old', 1.7e9, 1.7e9 + 60, 1.7e9) RETURNING id"
        )
        await conn.execute(
            "INSERT INTO job_events (job_id, event, status, at, job_type, run_at) "
            "VALUES ($1, 'enqueued', 'pending', 1.7e9, 't', 1.7e9 + 60)",
            old_id,
        )
    finally:
        await conn.close()
    async with JobQueue(db_path) as queue:
        assert query(db_path, "SELECT version FROM schema_version") == [
            (postgres_sql.SCHEMA_VERSION,)
        ]
        indexes = query(
            db_path,
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'jobs'",
        )
        assert ("jobs_ready_by_priority",) in indexes
        assert ("jobs_ready_by_id",) not in indexes  # fifo/lifo read the priority index
        (old_event,) = await queue.get_job_history(old_id)
        assert old_event.event is JobEventType.ENQUEUED
        assert old_event.run_at is not None
        assert old_event.run_at.timestamp() == 1.7e9 + 60
        new_id = await queue.enqueue("t", "new", delay=5)
        (claimed,) = await queue.claim("w", limit=1)  # the old job: it is due
        assert claimed.id == old_id
        history = await queue.get_job_history(new_id)
        assert [e.event for e in history] == [JobEventType.ENQUEUED]
        job = await queue.get_job(new_id)
        assert job is not None
        assert job.status is JobStatus.PENDING
        assert history[0].run_at == job.run_at
