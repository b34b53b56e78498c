"""Brief commits: one enqueue on an idle queue commits on the event loop's own thread.

Under synchronous=NORMAL a commit only appends to the WAL, and one job's insert takes less
time than the thread hop it would otherwise need. These tests pin down what must still hold:

- the job is committed (visible to another connection) when ``enqueue`` returns;
- FULL (a commit is an fsync) keeps every write off the loop, and so does a job with
  metadata larger than a page;
- a loop of enqueues still gives the app's other tasks their turn;
- concurrent enqueues still share transactions (group commit), also when the callers of
  one commit write again at once;
- another process holding the write lock never blocks the loop: the enqueue waits in the
  writer's thread, commits once the lock is free, or fails with DatabaseBusyError having
  written nothing;
- a write the database rejects is rolled back and the next one commits;
- an idle worker's first claim is brief too, and a brief write that runs past its budget
  is undone and made in the writer's thread instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from support import sqlite_storage

from asyncqueue import JobQueue, ManualClock, QueueWorker
from asyncqueue.errors import DatabaseBusyError, DatabaseError
from asyncqueue.storage import sqlite_connection
from asyncqueue.storage.sqlite import BRIEF_METADATA_CHARS
from asyncqueue.validation import NewJob

# SQLite's commits on the event loop's thread: nothing of it exists on PostgreSQL.
pytestmark = pytest.mark.sqlite_only


def committed_targets(db: Path) -> list[str]:
    """Target ids committed to the file, read through a connection of its own."""
    with closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("SELECT target_id FROM jobs ORDER BY id")]


class WriterHops:
    """Counts the writer connection's trips to its thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, queue: JobQueue) -> None:
        self.count = 0
        writer_conn = sqlite_storage(queue)._write_side()._conn
        original = sqlite_connection.run_in_thread

        async def counting(conn: Any, fn: Any) -> Any:
            if conn is writer_conn:
                self.count += 1
            return await original(conn, fn)

        monkeypatch.setattr(sqlite_connection, "run_in_thread", counting)


class CountedCommits:
    def __init__(self, queue: JobQueue) -> None:
        self.count = 0
        self._writer = sqlite_storage(queue)._write_side()
        self._original = self._writer.on_commit
        self._writer.on_commit = self._committed

    def _committed(self) -> None:
        self.count += 1
        if self._original is not None:
            self._original()


@contextmanager
def write_lock_held_elsewhere(db: Path) -> Iterator[sqlite3.Connection]:
    """Another connection (as another process would) holds the write lock until the end."""
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE jobs SET priority = priority WHERE 0")
        try:
            yield other
        finally:
            if other.in_transaction:
                other.execute("COMMIT")


async def test_an_enqueue_on_an_idle_queue_is_committed_without_a_thread_hop(
    queue: JobQueue, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = WriterHops(monkeypatch, queue)
    ids = []
    for i in range(20):
        job_id = await queue.enqueue("brief", str(i))
        assert job_id.created
        ids.append(int(job_id))
        # Committed, not merely written: another connection sees it at once.
        assert committed_targets(db_path) == [str(k) for k in range(i + 1)]
    assert hops.count == 0
    # A duplicate is answered the same way, with the existing job's id.
    again = await queue.enqueue("brief", "3")
    assert not again.created
    assert int(again) == ids[3]
    assert hops.count == 0


async def test_an_enqueue_with_large_metadata_is_written_in_the_writers_thread(
    queue: JobQueue, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = WriterHops(monkeypatch, queue)
    small = {"text": "x" * (BRIEF_METADATA_CHARS - len('{"text":""}'))}
    await queue.enqueue("meta", "small", metadata=small)
    assert hops.count == 0
    await queue.enqueue("meta", "large", metadata={"text": "x" * BRIEF_METADATA_CHARS})
    assert hops.count == 1
    assert committed_targets(db_path) == ["small", "large"]


async def test_under_full_every_commit_stays_off_the_event_loop(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with JobQueue(db_path, synchronous="FULL") as queue:
        hops = WriterHops(monkeypatch, queue)
        for i in range(5):
            await queue.enqueue("full", str(i))
        assert hops.count == 5
    assert committed_targets(db_path) == [str(i) for i in range(5)]


async def test_a_loop_of_enqueues_gives_other_tasks_their_turn(queue: JobQueue) -> None:
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    try:
        before = turns
        for i in range(50):
            await queue.enqueue("loop", str(i))
        assert turns - before >= 50
    finally:
        ticker.cancel()


async def test_concurrent_enqueues_still_share_transactions(queue: JobQueue, db_path: Path) -> None:
    commits = CountedCommits(queue)
    ids = await asyncio.gather(*(queue.enqueue("group", str(i)) for i in range(50)))
    assert all(job_id.created for job_id in ids)
    assert len(set(ids)) == 50
    # The first commits alone on the loop; the 49 who came in the same turn go together.
    assert commits.count == 2
    assert sorted(committed_targets(db_path), key=int) == [str(i) for i in range(50)]


async def test_callers_resumed_by_one_commit_write_again_in_one_transaction(
    queue: JobQueue, db_path: Path
) -> None:
    """After a group commit, the first caller to write again does not commit alone on the
    loop while the others of its group queue behind it: each round is one transaction."""
    commits = CountedCommits(queue)
    rounds, producers = 5, 10

    async def producer(k: int) -> None:
        for i in range(rounds):
            await queue.enqueue("burst", f"{k}-{i}")

    await asyncio.gather(*(producer(k) for k in range(producers)))
    # The very first enqueue finds the queue idle and commits alone.
    assert commits.count <= 1 + rounds
    assert len(committed_targets(db_path)) == rounds * producers


async def test_a_lock_held_by_another_process_never_blocks_the_loop(
    queue: JobQueue, db_path: Path
) -> None:
    await queue.enqueue("before", "0")
    with write_lock_held_elsewhere(db_path) as other:
        waiting = asyncio.create_task(queue.enqueue("while-locked", "1"))
        # The loop keeps running while the enqueue waits for the lock in the writer's thread.
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert not waiting.done()
        assert committed_targets(db_path) == ["0"]
        other.execute("COMMIT")
        job_id = await waiting
    assert job_id.created
    assert committed_targets(db_path) == ["0", "1"]
    # Once the lock is free, enqueues commit on the loop again.
    assert (await queue.enqueue("after", "2")).created


async def test_a_lock_held_throughout_fails_with_busy_error_and_writes_nothing(
    db_path: Path,
) -> None:
    async with JobQueue(db_path, busy_timeout=0.05, busy_retries=2) as queue:
        await queue.enqueue("before", "0")
        with write_lock_held_elsewhere(db_path), pytest.raises(DatabaseBusyError):
            await queue.enqueue("while-locked", "1")
        assert committed_targets(db_path) == ["0"]
        assert (await queue.enqueue("after", "2")).created
    assert committed_targets(db_path) == ["0", "2"]


async def test_a_brief_write_the_database_rejects_is_rolled_back(
    queue: JobQueue, db_path: Path, clock: ManualClock
) -> None:
    storage = sqlite_storage(queue)
    now = clock.now()
    await queue.enqueue("good", "0")
    with pytest.raises(DatabaseError) as rejected:
        await storage.insert_job(NewJob("bad", "x", 5, 3, "{not json", now), now)
    assert isinstance(rejected.value.__cause__, sqlite3.IntegrityError)
    assert not storage._write_side()._conn._conn.in_transaction
    assert (await queue.enqueue("good", "1")).created
    assert committed_targets(db_path) == ["0", "1"]


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_a_full_disk_fails_the_enqueue_that_hit_it_and_writes_none_of_it(
    db_path: Path, synchronous: str
) -> None:
    """SQLITE_FULL (simulated with max_page_count) on the loop's commit and on the thread's."""
    async with JobQueue(db_path, synchronous=synchronous) as queue:
        writer_conn = sqlite_storage(queue)._write_side()._conn

        async def on_writer(statement: str) -> Any:
            def run(conn: sqlite3.Connection) -> Any:
                return conn.execute(statement).fetchone()

            return await sqlite_connection.run_in_thread(writer_conn, run)

        pages = (await on_writer("PRAGMA page_count"))[0]
        await on_writer(f"PRAGMA max_page_count = {pages + 2}")
        accepted: list[str] = []

        async def fill_until_full() -> None:
            for i in range(10_000):
                await queue.enqueue("fill", str(i), metadata={"pad": "x" * 500})
                accepted.append(str(i))

        with pytest.raises(DatabaseError, match="full") as full:
            await fill_until_full()
        assert isinstance(full.value.__cause__, sqlite3.OperationalError)
        assert accepted  # some went in before the file was full
        assert not writer_conn._conn.in_transaction
        assert committed_targets(db_path) == accepted
        await on_writer("PRAGMA max_page_count = 1073741823")
        assert (await queue.enqueue("after", "x")).created
    assert committed_targets(db_path) == [*accepted, "x"]


class Recorder(QueueWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ran: list[str] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.ran.append(target_id)
        return True


class Exchanges:
    """Each exchange of a worker: (outcomes sent, claim limit, brief, hops it took)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, queue: JobQueue) -> None:
        self.seen: list[tuple[int, int, bool, int]] = []
        hops = WriterHops(monkeypatch, queue)
        original = queue.finish_and_claim

        async def watched(finished: Any, **kwargs: Any) -> Any:
            before = hops.count
            result = await original(finished, **kwargs)
            brief = kwargs.get("brief", False)
            self.seen.append((len(finished), kwargs["limit"], brief, hops.count - before))
            return result

        monkeypatch.setattr(queue, "finish_and_claim", watched)


async def test_an_idle_workers_first_claim_is_committed_without_a_thread_hop(
    queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    await queue.enqueue_many([{"job_type": "idle", "target_id": str(i)} for i in range(25)])
    exchanges = Exchanges(monkeypatch, queue)
    worker = Recorder(queue, concurrency=4)
    assert await worker.run_until_idle() == 25
    # A claim from idle fills the runners, on the loop; exchanges carrying outcomes (and the
    # claim of jobs to hold ahead) go through the writer's thread.
    assert exchanges.seen[0] == (0, 4, True, 0)
    assert any(finished for finished, _, _, _ in exchanges.seen)
    for finished, limit, brief, hops in exchanges.seen:
        if finished:
            assert (brief, hops) == (False, 1), exchanges.seen
        else:
            assert (limit, brief, hops) == (4, True, 0), exchanges.seen
    assert sorted(worker.ran, key=int) == [str(i) for i in range(25)]
    stats = await queue.get_queue_stats()
    assert (stats.completed_jobs, stats.processing_jobs) == (25, 0)


async def test_a_brief_write_past_its_budget_is_undone_and_made_in_the_writers_thread(
    queue: JobQueue, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every brief write runs out of time at its first look at the clock.
    monkeypatch.setattr(sqlite_connection, "BRIEF_BUDGET_SECONDS", -1.0)
    monkeypatch.setattr(sqlite_connection, "BRIEF_CHECK_EVERY", 1)
    hops = WriterHops(monkeypatch, queue)
    ids = [int(await queue.enqueue("slow", str(i))) for i in range(3)]
    assert hops.count == 3
    assert committed_targets(db_path) == ["0", "1", "2"]
    exchanges = Exchanges(monkeypatch, queue)
    worker = Recorder(queue, concurrency=3)
    assert await worker.run_until_idle() == 3
    assert exchanges.seen[0] == (0, 3, True, 1)
    assert sorted(worker.ran) == ["0", "1", "2"]
    # The interrupted tries left nothing behind: one attempt, one row per transition.
    for job_id in ids:
        job = await queue.get_job(job_id)
        assert job is not None
        assert (job.status, job.attempts) == ("completed", 1)
        events = [event.event.value for event in await queue.get_job_history(job_id)]
        assert events == ["enqueued", "claimed", "completed"]
    # The budget is lifted once the write is done: the connection's thread is unbounded.
    writer = sqlite_storage(queue)._write_side()._conn._conn
    assert writer.execute("SELECT count(*) FROM jobs").fetchone()[0] == 3
