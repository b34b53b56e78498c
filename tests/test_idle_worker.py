"""An idle worker claims nothing (#15): it reads the queue's earliest due time, claims when a
notification arrives or a job comes due, and reads again every ``poll_interval`` for jobs that
came due without notice.

Claims and reads are counted at the storage, on both backends; time is a WatchedClock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support import WatchedClock, job_of, wait_for_status, wait_until

import asyncqueue.queue
from asyncqueue import JobQueue, JobStatus, QueueWorker
from asyncqueue.errors import DatabaseError
from asyncqueue.server.claiming import POLL_SLICE_SECONDS, wait_for_news
from asyncqueue.server.notify import EnqueueCounter

START = 1_800_000_000.0
POLL = 1.0


@pytest.fixture
def clock() -> WatchedClock:
    return WatchedClock(start=START)


@pytest.fixture
async def queue(db_path: Path, clock: WatchedClock) -> AsyncIterator[JobQueue]:
    async with JobQueue(db_path, clock=clock, retry_base_delay=2.0) as q:
        yield q


@dataclasses.dataclass
class Calls:
    claims: int = 0
    reads: int = 0


def counted(queue: JobQueue, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Count the claims (exchanges asking for jobs) and due-time reads the queue makes."""
    storage = queue._storage
    calls = Calls()
    claim = storage.finish_and_claim
    read = storage.earliest_ready

    async def finish_and_claim(finished: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request is not None:
            calls.claims += 1
        return await claim(finished, request, *args, **kwargs)

    async def earliest_ready(job_types: tuple[str, ...] | None) -> float | None:
        calls.reads += 1
        return await read(job_types)

    monkeypatch.setattr(storage, "finish_and_claim", finish_and_claim)
    monkeypatch.setattr(storage, "earliest_ready", earliest_ready)
    return calls


class Flaky(QueueWorker):
    """Fails the first attempt of a job whose target starts with "flaky"; records what ran."""

    def __init__(self, queue: JobQueue, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.ran: list[str] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        first = target_id not in self.ran
        self.ran.append(target_id)
        if first and target_id.startswith("flaky"):
            raise RuntimeError("first attempt fails")
        return True


async def started(worker: QueueWorker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.start())


async def stopped(worker: QueueWorker, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(10):
        await worker.stop(grace_period=0)
    await task


async def test_an_idle_worker_reads_the_due_time_each_poll_and_claims_nothing(
    queue: JobQueue, clock: WatchedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counted(queue, monkeypatch)
    worker = Flaky(queue, poll_interval=POLL)
    task = await started(worker)
    try:
        await clock.wait_for_sleeper(POLL)
        assert calls.claims == 1, "the worker's first claim, at start"
        reads = calls.reads
        for _ in range(20):
            clock.advance(POLL)
            await clock.wait_for_sleeper(POLL)
        assert calls.claims == 1, "twenty idle polls, no claim"
        assert calls.reads == reads + 20, "one read of the due time a poll"
    finally:
        await stopped(worker, task)


async def test_a_delayed_job_starts_when_it_comes_due_not_at_the_next_poll(
    queue: JobQueue, clock: WatchedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counted(queue, monkeypatch)
    worker = Flaky(queue, poll_interval=3600)
    task = await started(worker)
    try:
        await clock.wait_for_sleeper(3600)
        job_id = await queue.enqueue("t", "later", delay=5)
        # The enqueue's notification costs one claim (nothing is due yet), then the worker
        # sleeps until the job's due time.
        await clock.wait_for_sleeper(5.0)
        assert calls.claims == 2
        assert (await job_of(queue, job_id)).status is JobStatus.PENDING
        clock.advance(5.0)
        await wait_for_status(queue, job_id, JobStatus.COMPLETED)
        # The claim at the due time got all it asked for (one, to start), so the outcome's
        # exchange asks for more; then the worker is idle again and claims nothing.
        await clock.wait_for_sleeper(3600)
        assert calls.claims == 4
        for _ in range(3):
            clock.advance(3600)
            await clock.wait_for_sleeper(3600)
        assert calls.claims == 4
    finally:
        await stopped(worker, task)


async def test_a_retry_starts_when_its_backoff_ends(queue: JobQueue, clock: WatchedClock) -> None:
    worker = Flaky(queue, poll_interval=3600)
    task = await started(worker)
    try:
        job_id = await queue.enqueue("t", "flaky")
        job = await wait_for_status(queue, job_id, JobStatus.RETRY_SCHEDULED)
        backoff = job.run_at.timestamp() - clock.now()
        assert 0 < backoff < 3600
        await clock.wait_for_sleeper(backoff)
        clock.advance(backoff)
        job = await wait_for_status(queue, job_id, JobStatus.COMPLETED)
        assert job.attempts == 2
    finally:
        await stopped(worker, task)


async def test_a_job_made_due_without_notice_is_found_by_the_next_read(
    db_path: Path, queue: JobQueue, clock: WatchedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's delayed job (no notification for a job not yet due reaches this
    one on SQLite, and its due time passes silently) runs by the first read after."""
    calls = counted(queue, monkeypatch)
    worker = Flaky(queue, poll_interval=POLL, job_types=["mine"])
    task = await started(worker)
    try:
        await clock.wait_for_sleeper(POLL)
        async with JobQueue(db_path, clock=clock) as other:
            job_id = await other.enqueue("mine", "from-elsewhere", delay=0.5)
            ignored = await other.enqueue("theirs", "not-for-this-worker")
        clock.advance(POLL)
        await wait_for_status(queue, job_id, JobStatus.COMPLETED)
        assert worker.ran == ["from-elsewhere"]
        assert (await job_of(queue, ignored)).status is JobStatus.PENDING
        claims = calls.claims
        for _ in range(5):  # a job of other types due: read, not claimed
            await clock.wait_for_sleeper(POLL)
            clock.advance(POLL)
        await clock.wait_for_sleeper(POLL)
        assert calls.claims == claims
    finally:
        await stopped(worker, task)


async def test_a_recovered_lease_wakes_the_worker_that_swept_it(
    db_path: Path, clock: WatchedClock
) -> None:
    async with JobQueue(db_path, clock=clock, job_timeout_minutes=0.25) as queue:
        job_id = await queue.enqueue("t", "orphan")
        [_held] = await queue.claim("crashed-peer", limit=1)
        worker = Flaky(queue, poll_interval=3600, heartbeat_interval=5)
        task = await started(worker)
        try:
            await clock.wait_for_sleeper(3600)
            for _ in range(4):  # the lease is 15 s: the fourth sweep takes the job back
                await clock.wait_for_sleeper(5)
                clock.advance(5)
            job = await wait_for_status(queue, job_id, JobStatus.COMPLETED)
            assert job.worker_id == worker.worker_id
        finally:
            await stopped(worker, task)


@pytest.mark.postgres_only
async def test_a_due_job_another_transaction_holds_costs_one_claim_a_poll(
    db_path: str,
    pg_schema: str,
    queue: JobQueue,
    clock: WatchedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A due row locked elsewhere is skipped by claims; the reads that still see it due
    must not turn into a claim loop."""
    job_id = await queue.enqueue("t", "locked")
    calls = counted(queue, monkeypatch)
    app = await asyncpg.connect(db_path)
    try:
        lock = app.transaction()
        await lock.start()
        await app.execute(f"SELECT 1 FROM {pg_schema}.jobs WHERE id = $1 FOR UPDATE", job_id)
        worker = Flaky(queue, poll_interval=POLL)
        task = await started(worker)
        try:
            await clock.wait_for_sleeper(POLL)
            for _ in range(5):
                clock.advance(POLL)
                await clock.wait_for_sleeper(POLL)
            # One claim at start, then at most one each poll (each after a read said due).
            assert 1 <= calls.claims <= 6
            assert (await job_of(queue, job_id)).status is JobStatus.PENDING
            await lock.rollback()
            clock.advance(POLL)
            await wait_for_status(queue, job_id, JobStatus.COMPLETED)
        finally:
            await stopped(worker, task)
    finally:
        await app.close()


async def test_idle_reads_are_jittered_below_poll_interval(
    queue: JobQueue, clock: WatchedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asyncqueue.queue, "POLL_JITTER", 0.1)
    pauses: list[float] = []
    sleep = clock.sleep

    async def recorded(seconds: float) -> None:
        if seconds <= POLL:
            pauses.append(seconds)
        await sleep(seconds)

    monkeypatch.setattr(clock, "sleep", recorded)
    random.seed(15)
    worker = Flaky(queue, poll_interval=POLL)
    task = await started(worker)
    try:
        for _ in range(8):
            await wait_until(_sleeping(clock, pauses), "an idle read's pause")
            clock.advance(POLL)
        assert len(pauses) >= 8
        assert all(0.9 * POLL <= p <= POLL for p in pauses), pauses
        assert len(set(pauses)) > 1, "workers started together must not read in step"
    finally:
        await stopped(worker, task)


def _sleeping(clock: WatchedClock, pauses: list[float]) -> Any:
    async def condition() -> bool:
        return bool(pauses) and clock.is_sleeping(pauses[-1])

    return condition


async def test_a_failed_read_backs_off_then_lets_the_worker_claim(
    queue: JobQueue, clock: WatchedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(job_types: tuple[str, ...] | None) -> float | None:
        raise DatabaseError("the database went away")

    monkeypatch.setattr(queue._storage, "earliest_ready", broken)
    waiting = asyncio.ensure_future(queue.wait_for_work(2.0, None))
    await clock.wait_for_sleeper(2.0)
    assert not waiting.done(), "a failed read sleeps poll_interval before the next claim"
    clock.advance(2.0)
    async with asyncio.timeout(10):
        await waiting


async def test_the_wait_returns_at_once_for_a_job_due_since_the_last_claim(
    queue: JobQueue, clock: WatchedClock
) -> None:
    await queue.claim("w", limit=1)  # nothing there
    clock.advance(0.001)
    await queue.enqueue("t", "after-the-claim")
    async with asyncio.timeout(10):
        await queue.wait_for_work(3600, None)


async def test_a_claim_for_other_job_types_does_not_make_a_due_job_old_news(
    queue: JobQueue, clock: WatchedClock
) -> None:
    """A claim for other types (another worker on the same queue object, busy with its own
    jobs) says nothing about a due job of these types: the wait returns at once. (A claim
    that could have taken it and passed it over: see the PostgreSQL tests below.)"""
    await queue.enqueue("b", "due", delay=5)
    clock.advance(5)
    assert await queue.claim("busy", limit=1, job_types=["a"]) == []
    async with asyncio.timeout(10):
        await queue.wait_for_work(3600, ("b",))


@pytest.mark.postgres_only
async def test_a_long_poll_reports_a_passed_over_job_again_a_poll_later(
    db_path: str, pg_schema: str, queue: JobQueue, clock: WatchedClock
) -> None:
    """Each remote worker's wait is a new request: a due job the last claim passed over (a
    row lock held elsewhere) must still be reported once poll_interval has passed since that
    claim, or the remote worker would never claim it."""
    job_id = await queue.enqueue("t", "locked")
    app = await asyncpg.connect(db_path)
    try:
        lock = app.transaction()
        await lock.start()
        await app.execute(f"SELECT 1 FROM {pg_schema}.jobs WHERE id = $1 FOR UPDATE", job_id)
        assert await queue.claim("remote", limit=1) == []
        counter = EnqueueCounter(queue)
        news = await wait_for_news(queue, counter, since=0, seconds=0.2, job_types=None)
        assert news == (0, False), "just passed over: not news"
        clock.advance(POLL_SLICE_SECONDS)
        news = await wait_for_news(queue, counter, since=0, seconds=5, job_types=None)
        assert news == (0, True), "a poll later: claim again"
        await lock.rollback()
        [claimed] = await queue.claim("remote", limit=1)
        assert claimed.id == job_id
    finally:
        await app.close()


class Blocking(QueueWorker):
    """Jobs whose target starts with "block" wait for ``release``; others complete."""

    def __init__(self, queue: JobQueue, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.release = asyncio.Event()
        self.ran: list[str] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.ran.append(target_id)
        if target_id.startswith("block"):
            await self.release.wait()
        return True


async def test_a_busy_worker_with_free_slots_takes_a_job_that_came_due(
    queue: JobQueue, clock: WatchedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long job in one slot: the other slot takes a delayed job within poll_interval of
    its due time (no notification comes when it does)."""
    calls = counted(queue, monkeypatch)
    worker = Blocking(queue, concurrency=2, poll_interval=POLL)
    task = await started(worker)
    try:
        await queue.enqueue("t", "block")
        delayed = await queue.enqueue("t", "delayed", delay=5)
        await wait_until(_ran(worker, "block"), "the long job to start")
        for _ in range(5):  # at most one claim a poll while nothing is due
            await clock.wait_for_sleeper(POLL)
            clock.advance(POLL)
        await wait_for_status(queue, delayed, JobStatus.COMPLETED)
        assert calls.claims <= 2 + 5
        assert worker.ran == ["block", "delayed"]
        worker.release.set()
    finally:
        worker.release.set()
        await stopped(worker, task)


def _ran(worker: Blocking, target: str) -> Any:
    async def condition() -> bool:
        return target in worker.ran

    return condition


async def test_a_full_claim_for_every_type_does_not_make_a_due_job_old_news(
    queue: JobQueue, clock: WatchedClock
) -> None:
    """A busy worker for every type whose claims come back full never reached the other
    jobs: an idle worker for "b" must still take its due job at once."""
    await queue.enqueue("b", "due", delay=5, priority=10)
    clock.advance(5)
    for n in range(3):
        await queue.enqueue("a", f"first-{n}", priority=1)
    assert len(await queue.claim("busy", limit=2)) == 2  # full: "due" not reached
    async with asyncio.timeout(10):
        await queue.wait_for_work(3600, ("b",))


async def test_a_stopping_server_answers_a_wait_at_once_with_claim_now(queue: JobQueue) -> None:
    """A stopping server's wait answers "due" at once: the client's claim then meets the
    shutdown and backs off, rather than waits that return at once, again and again."""
    counter = EnqueueCounter(queue)
    counter.close()
    async with asyncio.timeout(10):
        assert await wait_for_news(queue, counter, since=0, seconds=30, job_types=None) == (
            0,
            True,
        )


async def test_claim_times_are_kept_for_a_bounded_number_of_type_lists(
    queue: JobQueue, clock: WatchedClock
) -> None:
    """Remote workers name their own type lists: what a queue remembers of them is bounded,
    the most recent kept."""
    for n in range(200):
        assert await queue.claim("remote", limit=1, job_types=(f"type-{n}",)) == []
        clock.advance(1)
    remembered = queue._last_claims
    assert len(remembered) == asyncqueue.queue._CLAIMS_REMEMBERED
    assert ("type-199",) in remembered
    assert ("type-0",) not in remembered
