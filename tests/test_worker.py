"""QueueWorker: concurrency, outcomes, start/stop, graceful shutdown, the workers table, config.

Time is a ManualClock: the worker's poll interval, grace period and heartbeat all sleep on
``queue.clock``, so the tests move time by hand and never sleep for real except to poll for a
condition under a generous deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from support import WatchedClock, is_postgres, job_of, query, wait_for_status, wait_until

from asyncqueue import (
    ConfigurationError,
    JobQueue,
    JobStatus,
    ManualClock,
    QueueWorker,
    WorkerError,
)
from asyncqueue.job import ClaimedJob, claimed_job
from asyncqueue.validation import MAX_ERROR_CHARS
from asyncqueue.worker import CLAIM_AHEAD_MAX_JOB_SECONDS, CLAIM_AHEAD_MAX_JOBS

#: Real seconds allowed for something that should happen at once. Generous: only a broken
#: worker ever waits this long.
DEADLINE = 10.0
#: Real seconds a known-bug (xfail) test waits before concluding the bug is still there.
BUG_DEADLINE = 2.0


@pytest.fixture
def clock() -> WatchedClock:
    return WatchedClock(start=1_800_000_000.0)


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be shown")


class Scripted(QueueWorker):
    """Does what the job type says: ok, false, none, raise, block until released, and more."""

    def __init__(self, queue: JobQueue, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.calls: list[str] = []
        self.started: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.cancelled: list[str] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> Any:
        self.calls.append(target_id)
        self.started[target_id].set()
        if job_type == "ok":
            return True
        if job_type == "false":
            return False
        if job_type == "none":
            return None
        if job_type == "raise":
            raise ValueError(f"boom {target_id}")
        if job_type == "unprintable":
            raise UnprintableError
        if job_type == "surrogate":  # bytes decoded with surrogateescape, say a file name
            raise ValueError(b"bad \xff name".decode("utf-8", "surrogateescape"))
        if job_type == "nul":  # binary data in a message: PostgreSQL text cannot hold NUL
            raise ValueError("bad \x00 byte")
        if job_type == "huge":  # an exception carrying a whole response body, say
            raise ValueError("x" * 1_000_000)
        if job_type == "awaits_cancelled":  # e.g. awaits a task someone else cancelled
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future
        if job_type == "stop_self":
            await self.stop()  # must not wait for itself
            return True
        if job_type == "block":
            try:
                await self.gates[target_id].wait()
            except asyncio.CancelledError:
                self.cancelled.append(target_id)
                raise
            return True
        raise AssertionError(f"unexpected job type {job_type}")


class Succeeds(QueueWorker):
    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        return True


class Barrier(QueueWorker):
    """Every job waits until ``expected`` jobs run at once, then until released."""

    def __init__(self, queue: JobQueue, *, expected: int, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.expected = expected
        self.running = 0
        self.max_running = 0
        self.all_in = asyncio.Event()
        self.release = asyncio.Event()

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        if self.running == self.expected:
            self.all_in.set()
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return True


async def settle(queue: JobQueue) -> None:
    """Give every task the chance to run (and the worker to misbehave) before a negative check."""
    for _ in range(5):
        for _ in range(20):
            await asyncio.sleep(0)
        await queue.get_queue_stats()


async def wait_for_event(event: asyncio.Event) -> None:
    async with asyncio.timeout(DEADLINE):
        await event.wait()


WORKER_COLUMNS = (
    "id",
    "host",
    "pid",
    "started_at",
    "last_heartbeat",
    "heartbeat_interval",
    "jobs_processed",
    "jobs_failed",
)


def worker_rows(db_path: Path | str) -> dict[str, dict[str, Any]]:
    rows = query(db_path, f"SELECT {', '.join(WORKER_COLUMNS)} FROM workers")
    return {row[0]: dict(zip(WORKER_COLUMNS, row, strict=True)) for row in rows}


async def finish(task: asyncio.Task[Any], what: str = "the task to finish") -> Any:
    try:
        async with asyncio.timeout(DEADLINE):
            return await task
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


# -- concurrency -------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_concurrency_n_runs_exactly_n_jobs_at_once(queue: JobQueue, concurrency: int) -> None:
    await queue.enqueue_many(
        [{"job_type": "work", "target_id": f"t{i}"} for i in range(2 * concurrency)]
    )
    worker = Barrier(queue, concurrency=concurrency, expected=concurrency)
    run = asyncio.create_task(worker.run_until_idle())
    try:
        # Deadlocks (and fails) unless `concurrency` jobs really run at the same time.
        await wait_for_event(worker.all_in)
        stats = await queue.get_queue_stats()
        assert worker.running == concurrency
        assert stats.processing_jobs == concurrency
        assert stats.pending_jobs == concurrency
    finally:
        worker.release.set()
    assert await finish(run) == 2 * concurrency
    assert worker.max_running == concurrency
    stats = await queue.get_queue_stats()
    assert stats.completed_jobs == 2 * concurrency
    assert stats.total_jobs == 2 * concurrency


class Sampling(QueueWorker):
    """Records how many jobs are leased (processing) whenever it samples the database."""

    def __init__(self, queue: JobQueue, *, every: int, sleep: float = 0.0, **kwargs: Any):
        super().__init__(queue, **kwargs)
        self.every = every
        self.sleep = sleep
        self.calls = 0
        self.leased: list[int] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.calls += 1
        if self.sleep:
            await asyncio.sleep(self.sleep)
        if self.calls % self.every == 0:
            self.leased.append((await self.queue.get_queue_stats()).processing_jobs)
        return True


async def test_short_jobs_are_claimed_ahead_up_to_the_cap(queue: JobQueue) -> None:
    await queue.enqueue_many(
        [{"job_type": "work", "target_id": f"t{i}"} for i in range(3 * CLAIM_AHEAD_MAX_JOBS)]
    )
    worker = Sampling(queue, every=25, concurrency=2)
    assert await worker.run_until_idle() == 3 * CLAIM_AHEAD_MAX_JOBS
    assert worker.leased
    assert max(worker.leased) <= 2 + CLAIM_AHEAD_MAX_JOBS
    assert (await queue.get_queue_stats()).completed_jobs == 3 * CLAIM_AHEAD_MAX_JOBS


async def test_jobs_longer_than_the_claim_ahead_limit_are_never_claimed_ahead(
    queue: JobQueue,
) -> None:
    await queue.enqueue_many([{"job_type": "work", "target_id": f"t{i}"} for i in range(12)])
    # Each job sleeps past CLAIM_AHEAD_MAX_JOB_SECONDS, so however fast the machine, the
    # worker only ever holds the jobs it runs.
    worker = Sampling(queue, every=1, sleep=2 * CLAIM_AHEAD_MAX_JOB_SECONDS, concurrency=2)
    assert await worker.run_until_idle() == 12
    assert max(worker.leased) <= 2


class Instant(QueueWorker):
    """Jobs that never await: a runner only gives the event loop back when it chooses to."""

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        return True


async def test_outcomes_go_out_while_claimed_jobs_are_still_waiting_to_run(
    queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round trip overlaps the jobs: a runner does not drain the buffer before it."""
    jobs = 3 * CLAIM_AHEAD_MAX_JOBS  # enough for the worker to hold a full buffer
    await queue.enqueue_many([{"job_type": "work", "target_id": f"t{i}"} for i in range(jobs)])
    worker = Instant(queue, concurrency=20)
    sent: list[tuple[int, int]] = []  # (outcomes in the round trip, jobs still waiting)
    original = queue.finish_and_claim

    async def watched(finished: Any, **kwargs: Any) -> Any:
        sent.append((len(finished), len(worker._ready)))
        return await original(finished, **kwargs)

    monkeypatch.setattr(queue, "finish_and_claim", watched)
    assert await worker.run_until_idle() == jobs
    assert any(outcomes and waiting for outcomes, waiting in sent), sent
    assert (await queue.get_queue_stats()).completed_jobs == jobs


class Mutating(QueueWorker):
    """Writes into the metadata it is given, as a job may."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[dict[str, Any]] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.seen.append(dict(metadata))
        metadata[target_id] = True
        return True


async def test_each_claimed_job_gets_its_own_metadata_dict(queue: JobQueue) -> None:
    await queue.enqueue_many(
        [{"job_type": "work", "target_id": f"t{i}"} for i in range(5)]
        + [{"job_type": "work", "target_id": "m", "metadata": {"a": [1, {"b": None}]}}]
    )
    worker = Mutating(queue, concurrency=3)
    assert await worker.run_until_idle() == 6
    assert sorted(map(str, worker.seen)) == sorted(["{}"] * 5 + ["{'a': [1, {'b': None}]}"])


def test_claimed_job_from_values_is_the_constructed_job_and_stays_frozen() -> None:
    values = (7, "work", "t7", {"a": 1}, 3, 1, 5, "token", "w1")
    job = claimed_job(values)
    assert job == ClaimedJob(*values)
    assert repr(job) == repr(ClaimedJob(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.id = 8  # type: ignore[misc]
    with pytest.raises(ValueError, match="zip"):
        claimed_job(values[:-1])


@pytest.mark.parametrize(
    ("average", "expected"),
    [
        (None, 0),  # nothing measured yet
        (CLAIM_AHEAD_MAX_JOB_SECONDS, 0),
        (0.9 * CLAIM_AHEAD_MAX_JOB_SECONDS, 4),  # about one queued job per runner
        (CLAIM_AHEAD_MAX_JOB_SECONDS / 10, 40),
        (1e-7, CLAIM_AHEAD_MAX_JOBS),
        (0.0, CLAIM_AHEAD_MAX_JOBS),
    ],
)
def test_claim_ahead_holds_a_few_milliseconds_of_work_per_runner(
    queue: JobQueue, average: float | None, expected: int
) -> None:
    worker = Sampling(queue, every=1, concurrency=4)
    worker._average_job_seconds = average
    assert worker._claim_ahead() == expected


# -- outcomes ----------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_exception_false_and_none_are_failed_attempts(
    queue: JobQueue, clock: WatchedClock, concurrency: int
) -> None:
    ok = await queue.enqueue("ok", "a", max_retries=1)
    failing = {
        await queue.enqueue("raise", "b", max_retries=1): ("ValueError", "boom b"),
        await queue.enqueue("false", "c", max_retries=1): ("False",),
        await queue.enqueue("none", "d", max_retries=1): ("None",),
    }
    worker = Scripted(queue, concurrency=concurrency)

    assert await worker.run_until_idle() == 4

    assert (await job_of(queue, ok)).status is JobStatus.COMPLETED
    for job_id, words in failing.items():
        job = await job_of(queue, job_id)
        assert job.status is JobStatus.RETRY_SCHEDULED
        assert (job.retry_count, job.attempts) == (1, 1)
        assert job.error_message is not None
        assert all(word in job.error_message for word in words), job.error_message

    clock.advance(1.0)  # the fixture's retry_base_delay: the retries come due
    assert await worker.run_until_idle() == 3

    for job_id, words in failing.items():
        job = await job_of(queue, job_id)
        assert job.status is JobStatus.FAILED
        assert (job.retry_count, job.attempts) == (1, 2)
        assert job.error_message is not None
        assert all(word in job.error_message for word in words), job.error_message
    assert (worker.jobs_processed, worker.jobs_failed) == (1, 6)
    stats = await queue.get_queue_stats()
    assert (stats.completed_jobs, stats.failed_jobs, stats.total_jobs) == (1, 3, 4)


async def test_a_failing_job_never_stops_a_started_worker(queue: JobQueue) -> None:
    worker = Scripted(queue)
    task = asyncio.create_task(worker.start())
    try:
        raising = await queue.enqueue("raise", "x", max_retries=0)
        job = await wait_for_status(queue, raising, JobStatus.FAILED)
        assert job.error_message is not None
        assert "ValueError" in job.error_message
        assert "boom x" in job.error_message
        returning_false = await queue.enqueue("false", "y", max_retries=0)
        await wait_for_status(queue, returning_false, JobStatus.FAILED)
        assert not task.done()
        assert worker.is_running

        ok = await queue.enqueue("ok", "z")
        await wait_for_status(queue, ok, JobStatus.COMPLETED)
        assert not task.done()
    finally:
        async with asyncio.timeout(DEADLINE):
            await worker.stop()
    assert await finish(task) is None
    assert worker.calls == ["x", "y", "z"]


async def test_an_exception_that_cannot_be_printed_does_not_stop_the_worker(
    queue: JobQueue,
) -> None:
    await check_worker_survives(queue, "unprintable")


@pytest.mark.parametrize(
    ("job_type", "stored"),
    [
        ("surrogate", "ValueError: bad \\udcff name"),  # no UTF-8 column stores it
        ("nul", "ValueError: bad \\x00 byte"),  # PostgreSQL text cannot hold it
    ],
)
async def test_an_error_message_neither_database_can_store_is_kept_escaped(
    queue: JobQueue, job_type: str, stored: str
) -> None:
    job_id = await queue.enqueue(job_type, "x", max_retries=0)
    assert await Scripted(queue).run_until_idle() == 1
    job = await job_of(queue, job_id)
    assert job.status is JobStatus.FAILED
    assert job.error_message == stored


async def test_an_outsized_error_message_is_cut_and_says_so(queue: JobQueue) -> None:
    job_id = await queue.enqueue("huge", "x", max_retries=1)
    assert await Scripted(queue).run_until_idle() == 1
    job = await job_of(queue, job_id)
    assert job.status is JobStatus.RETRY_SCHEDULED
    message = job.error_message
    assert message is not None
    assert len(message) <= MAX_ERROR_CHARS
    kept, _, note = message.partition("... [")
    assert kept == ("ValueError: " + "x" * 1_000_000)[: len(kept)]
    assert len(kept) > MAX_ERROR_CHARS - 100
    cut = int(note.removesuffix(" more characters cut]").replace(",", ""))
    assert len(kept) + cut == len("ValueError: ") + 1_000_000
    history = await queue.get_job_history(job_id)
    assert [event.error for event in history if event.error] == [message]


async def test_a_job_raising_cancelled_error_does_not_stop_the_worker(queue: JobQueue) -> None:
    await check_worker_survives(queue, "awaits_cancelled")


async def check_worker_survives(queue: JobQueue, job_type: str) -> None:
    worker = Scripted(queue)
    task = asyncio.create_task(worker.start())
    try:
        bad = await queue.enqueue(job_type, "bad", max_retries=0)
        await wait_for_event(worker.started["bad"])
        ok = await queue.enqueue("ok", "after")

        async def settled() -> bool:
            return task.done() or (await job_of(queue, ok)).status is JobStatus.COMPLETED

        await wait_until(settled, "the worker to run the next job or to stop", BUG_DEADLINE)
        assert not task.done()
        assert (await job_of(queue, bad)).status is JobStatus.FAILED
    finally:
        if not task.done():
            async with asyncio.timeout(DEADLINE):
                await worker.stop(grace_period=0)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


# -- start / stop ------------------------------------------------------------------------


async def test_start_runs_until_stop_even_when_idle(
    queue: JobQueue, clock: WatchedClock, db_path: Path
) -> None:
    worker = Scripted(queue, poll_interval=1.0)
    task = asyncio.create_task(worker.start())
    first = await queue.enqueue("ok", "first")
    await wait_for_status(queue, first, JobStatus.COMPLETED)

    for _ in range(5):  # idle polls: the worker keeps running
        await clock.wait_for_sleeper(1.0)
        clock.advance(1.0)
    await clock.wait_for_sleeper(1.0)
    assert not task.done()
    assert worker.is_running

    # A job enqueued through another JobQueue object (as another process would) does not
    # wake the worker; its next poll finds it.
    async with JobQueue(db_path, clock=clock) as other:
        second = await other.enqueue("ok", "second")
    clock.advance(1.0)
    await wait_for_status(queue, second, JobStatus.COMPLETED)
    assert not task.done()

    async with asyncio.timeout(DEADLINE):
        await worker.stop()
    assert task.done()
    assert task.result() is None
    assert not worker.is_running


async def test_starting_a_running_worker_raises_worker_error(queue: JobQueue) -> None:
    worker = Scripted(queue)
    task = asyncio.create_task(worker.start())
    ok = await queue.enqueue("ok", "before")
    await wait_for_status(queue, ok, JobStatus.COMPLETED)

    with pytest.raises(WorkerError):
        await worker.start()
    with pytest.raises(WorkerError):
        await worker.run_until_idle()

    # The first run is unaffected.
    assert not task.done()
    after = await queue.enqueue("ok", "after")
    await wait_for_status(queue, after, JobStatus.COMPLETED)
    async with asyncio.timeout(DEADLINE):
        await worker.stop()
    assert await finish(task) is None


async def test_stop_is_graceful_no_new_claims_and_the_running_job_finishes(
    queue: JobQueue, clock: WatchedClock, db_path: Path
) -> None:
    worker = Scripted(queue, worker_id="graceful", concurrency=2, shutdown_grace_period=60.0)
    running = await queue.enqueue("block", "running")
    task = asyncio.create_task(worker.start())
    await wait_for_event(worker.started["running"])

    stopping = asyncio.create_task(worker.stop())
    await clock.wait_for_sleeper(60.0)  # the grace period has begun
    # A free slot and a due job: a worker that still claimed would take it now.
    late = await queue.enqueue("ok", "late")
    clock.advance(59.0)
    await settle(queue)

    assert not stopping.done()
    assert worker.cancelled == []
    assert (await job_of(queue, running)).status is JobStatus.PROCESSING
    late_job = await job_of(queue, late)
    assert (late_job.status, late_job.attempts) == (JobStatus.PENDING, 0)
    assert "late" not in worker.calls

    worker.gates["running"].set()  # the job finishes within the grace period
    done = await wait_for_status(queue, running, JobStatus.COMPLETED)
    assert (done.retry_count, done.attempts) == (0, 1)
    clock.advance(1.0)  # the end of the grace period, at the latest
    await finish(stopping, "stop() to return")
    assert await finish(task) is None

    late_job = await job_of(queue, late)
    assert (late_job.status, late_job.attempts) == (JobStatus.PENDING, 0)
    assert worker.cancelled == []
    assert "graceful" not in worker_rows(db_path)


async def test_stop_returns_as_soon_as_the_running_jobs_finish(
    queue: JobQueue, clock: WatchedClock
) -> None:
    running = await queue.enqueue("block", "running")
    worker = Scripted(queue, shutdown_grace_period=60.0)
    task = asyncio.create_task(worker.start())
    await wait_for_event(worker.started["running"])
    stopping = asyncio.create_task(worker.stop())
    await clock.wait_for_sleeper(60.0)
    worker.gates["running"].set()
    await wait_for_status(queue, running, JobStatus.COMPLETED)
    try:
        async with asyncio.timeout(BUG_DEADLINE):
            await stopping
    finally:
        clock.advance(60.0)
        await finish(task)


@pytest.mark.parametrize("earlier_failures", [0, 1])
async def test_a_job_running_past_the_grace_period_returns_to_pending_without_losing_an_attempt(
    queue: JobQueue, clock: WatchedClock, earlier_failures: int
) -> None:
    job_id = await queue.enqueue("block", "slow", max_retries=3)
    for _ in range(earlier_failures):
        [claimed] = await queue.claim("earlier-worker", limit=1)
        await queue.fail_attempt(claimed, "RuntimeError: earlier failure")
        clock.advance(60.0)  # past any backoff
    worker = Scripted(queue, shutdown_grace_period=7.0)
    task = asyncio.create_task(worker.start())
    await wait_for_event(worker.started["slow"])

    stopping = asyncio.create_task(worker.stop())
    await clock.wait_for_sleeper(7.0)
    clock.advance(6.0)
    await settle(queue)
    assert not stopping.done()
    assert worker.cancelled == []
    assert (await job_of(queue, job_id)).status is JobStatus.PROCESSING

    clock.advance(1.0)  # the grace period is over
    await finish(stopping)
    assert await finish(task) is None

    assert worker.cancelled == ["slow"]
    job = await job_of(queue, job_id)
    assert job.status is JobStatus.PENDING
    assert job.retry_count == earlier_failures  # the interrupted attempt is not counted
    assert job.attempts == earlier_failures + 1
    assert job.worker_id is None
    assert job.lease_expires_at is None

    # Another worker can run it at once.
    assert await finish(asyncio.create_task(Succeeds(queue).run_until_idle())) == 1
    job = await job_of(queue, job_id)
    assert job.status is JobStatus.COMPLETED
    assert (job.retry_count, job.attempts) == (earlier_failures, earlier_failures + 2)


@pytest.mark.parametrize("grace_period", [0.0, 3.0])
async def test_stop_grace_period_overrides_shutdown_grace_period(
    queue: JobQueue, clock: WatchedClock, grace_period: float
) -> None:
    start = clock.now()
    job_id = await queue.enqueue("block", "slow")
    worker = Scripted(queue, shutdown_grace_period=3600.0)
    task = asyncio.create_task(worker.start())
    await wait_for_event(worker.started["slow"])

    stopping = asyncio.create_task(worker.stop(grace_period=grace_period))
    if grace_period:
        await clock.wait_for_sleeper(grace_period)
        clock.advance(grace_period)
    await finish(stopping)
    assert await finish(task) is None

    assert clock.now() == start + grace_period  # never near the 3600 s default
    assert worker.cancelled == ["slow"]
    job = await job_of(queue, job_id)
    assert (job.status, job.retry_count, job.attempts) == (JobStatus.PENDING, 0, 1)


async def test_stop_called_from_inside_a_job_stops_the_worker_after_that_job(
    queue: JobQueue,
) -> None:
    job_id = await queue.enqueue("stop_self", "a")
    other = await queue.enqueue("ok", "b", priority=10)
    worker = Scripted(queue)
    task = asyncio.create_task(worker.start())
    assert await finish(task) is None
    assert (await job_of(queue, job_id)).status is JobStatus.COMPLETED
    assert (await job_of(queue, other)).attempts == 0
    assert worker.calls == ["a"]


async def test_stop_without_running_jobs_returns_at_once(
    queue: JobQueue, clock: WatchedClock
) -> None:
    worker = Scripted(queue, shutdown_grace_period=3600.0)
    task = asyncio.create_task(worker.start())
    ok = await queue.enqueue("ok", "a")
    await wait_for_status(queue, ok, JobStatus.COMPLETED)
    start = clock.now()
    async with asyncio.timeout(DEADLINE):
        await worker.stop()
    assert await finish(task) is None
    assert clock.now() == start


async def test_stop_right_after_creating_the_start_task_stops_the_worker(
    queue: JobQueue,
) -> None:
    worker = Scripted(queue)
    task = asyncio.create_task(worker.start())
    await worker.stop()
    async with asyncio.timeout(DEADLINE):
        await task
    assert not worker.is_running


async def test_a_second_stop_with_a_shorter_grace_period_shortens_the_wait(
    queue: JobQueue, clock: WatchedClock
) -> None:
    job_id = await queue.enqueue("block", "slow")
    worker = Scripted(queue, shutdown_grace_period=3600.0)
    task = asyncio.create_task(worker.start())
    await wait_for_event(worker.started["slow"])
    first = asyncio.create_task(worker.stop())
    await clock.wait_for_sleeper(3600.0)
    second = asyncio.create_task(worker.stop(grace_period=5.0))
    await settle(queue)
    clock.advance(5.0)
    try:
        async with asyncio.timeout(BUG_DEADLINE):
            await asyncio.gather(first, second)
        assert (await job_of(queue, job_id)).status is JobStatus.PENDING
    finally:
        clock.advance(3600.0)
        await finish(task)


async def test_cancelling_the_start_task_returns_running_jobs_to_pending(
    queue: JobQueue, db_path: Path
) -> None:
    first = await queue.enqueue("block", "one")
    second = await queue.enqueue("block", "two")
    waiting = await queue.enqueue("ok", "three")
    worker = Scripted(queue, worker_id="cancelled", concurrency=2)
    task = asyncio.create_task(worker.start())
    await wait_for_event(worker.started["one"])
    await wait_for_event(worker.started["two"])
    assert "cancelled" in worker_rows(db_path)

    task.cancel()
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(asyncio.CancelledError):
            await task

    assert sorted(worker.cancelled) == ["one", "two"]
    assert not worker.is_running
    for job_id in (first, second):
        job = await job_of(queue, job_id)
        assert (job.status, job.retry_count, job.attempts) == (JobStatus.PENDING, 0, 1)
        assert job.worker_id is None
    assert (await job_of(queue, waiting)).attempts == 0
    assert "cancelled" not in worker_rows(db_path)
    assert (await queue.get_queue_stats()).active_workers == 0

    assert await finish(asyncio.create_task(Succeeds(queue).run_until_idle())) == 3
    assert (await queue.get_queue_stats()).completed_jobs == 3


# -- run_until_idle ----------------------------------------------------------------------


async def test_run_until_idle_returns_the_count_and_leaves_jobs_not_yet_due(
    queue: JobQueue, clock: WatchedClock
) -> None:
    due = [await queue.enqueue("ok", f"due-{i}") for i in range(3)]
    later = await queue.enqueue("ok", "later", delay=60.0)
    retried = await queue.enqueue("false", "retried", max_retries=1)
    worker = Scripted(queue, concurrency=2)

    assert await finish(asyncio.create_task(worker.run_until_idle())) == 4

    for job_id in due:
        assert (await job_of(queue, job_id)).status is JobStatus.COMPLETED
    later_job = await job_of(queue, later)
    assert (later_job.status, later_job.attempts) == (JobStatus.PENDING, 0)
    assert (await job_of(queue, retried)).status is JobStatus.RETRY_SCHEDULED
    stats = await queue.get_queue_stats()
    assert (stats.pending_jobs, stats.delayed_jobs, stats.retry_scheduled_jobs) == (1, 1, 1)
    assert not worker.is_running

    assert await worker.run_until_idle() == 0  # nothing is due yet

    clock.advance(1.0)  # the retry's backoff
    assert await worker.run_until_idle() == 1
    assert (await job_of(queue, retried)).status is JobStatus.FAILED
    assert (await job_of(queue, later)).status is JobStatus.PENDING

    clock.advance(59.0)
    assert await worker.run_until_idle() == 1
    assert (await job_of(queue, later)).status is JobStatus.COMPLETED
    assert worker.calls.count("later") == 1


# -- the workers table -------------------------------------------------------------------


async def test_a_running_worker_is_registered_and_removed_after_stop(
    queue: JobQueue, clock: WatchedClock, db_path: Path
) -> None:
    assert (await queue.get_queue_stats()).active_workers == 0
    worker = Scripted(queue, worker_id="registered", heartbeat_interval=5.0)
    task = asyncio.create_task(worker.start())
    job_id = await queue.enqueue("ok", "a")
    await wait_for_status(queue, job_id, JobStatus.COMPLETED)

    row = worker_rows(db_path)["registered"]
    assert row["host"] == socket.gethostname()
    assert row["pid"] == os.getpid()
    assert row["started_at"] == clock.now()
    assert (await queue.get_queue_stats()).active_workers == 1

    # The next heartbeat refreshes the row and its counters.
    await clock.wait_for_sleeper(5.0)
    clock.advance(5.0)

    async def heartbeat_recorded() -> bool:
        row = worker_rows(db_path)["registered"]
        return bool(row["last_heartbeat"] == clock.now() and row["jobs_processed"] == 1)

    await wait_until(heartbeat_recorded, "the heartbeat with the job count")
    assert (await queue.get_queue_stats()).active_workers == 1

    async with asyncio.timeout(DEADLINE):
        await worker.stop()
    await finish(task)
    assert worker_rows(db_path) == {}
    assert (await queue.get_queue_stats()).active_workers == 0


async def test_a_stale_worker_row_is_not_counted_and_is_pruned(
    queue: JobQueue, clock: WatchedClock, db_path: Path
) -> None:
    # The "hung" worker runs on a clock that never moves: it registers, then never
    # heartbeats again, like a worker whose process froze or died without unregistering.
    frozen = ManualClock(start=clock.now())
    async with JobQueue(db_path, clock=frozen) as hung_queue:
        hung = Scripted(hung_queue, worker_id="hung", heartbeat_interval=5.0)
        live = Scripted(queue, worker_id="live", heartbeat_interval=5.0)
        hung_task = asyncio.create_task(hung.start())
        live_task = asyncio.create_task(live.start())
        try:

            async def both_registered() -> bool:
                return (await queue.get_queue_stats()).active_workers == 2

            await wait_until(both_registered, "both workers to register")

            for _ in range(2):  # the live worker heartbeats at +5 and +10
                await clock.wait_for_sleeper(5.0)
                clock.advance(5.0)
                await clock.wait_for_sleeper(5.0)
                assert worker_rows(db_path)["live"]["last_heartbeat"] == clock.now()
            clock.advance(4.0)  # +14: the hung worker's heartbeat is under 3 intervals old
            assert (await queue.get_queue_stats()).active_workers == 2
            assert set(worker_rows(db_path)) == {"hung", "live"}

            clock.advance(2.0)  # +16: over 3 intervals old
            assert (await queue.get_queue_stats()).active_workers == 1

            async def pruned() -> bool:
                return set(worker_rows(db_path)) == {"live"}

            await wait_until(pruned, "the live worker's heartbeat to prune the stale row")
            assert (await queue.get_queue_stats()).active_workers == 1
        finally:
            async with asyncio.timeout(DEADLINE):
                await live.stop()
                await hung.stop()
            await finish(live_task)
            await finish(hung_task)
    assert worker_rows(db_path) == {}


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"worker_id": ""},
        {"worker_id": "   "},
        {"worker_id": "w" * 256},
        {"worker_id": "host\x00-1"},
        {"worker_id": "host-\udcff"},
        {"worker_id": 7},
        {"concurrency": 0},
        {"concurrency": -1},
        {"concurrency": 1.5},
        {"concurrency": True},
        {"concurrency": "2"},
        {"job_types": []},
        {"job_types": [""]},
        {"job_types": [3]},
        {"job_types": ["ok", "t" * 256]},
        {"poll_interval": 0},
        {"poll_interval": -1.0},
        {"poll_interval": float("nan")},
        {"poll_interval": float("inf")},
        {"poll_interval": True},
        {"poll_interval": "1"},
        {"strategy": "random"},
        {"strategy": "PRIORITY"},
        {"shutdown_grace_period": -0.5},
        {"shutdown_grace_period": float("nan")},
        {"shutdown_grace_period": float("inf")},
        {"shutdown_grace_period": False},
        {"heartbeat_interval": 0},
        {"heartbeat_interval": -5.0},
        {"heartbeat_interval": float("nan")},
    ],
    ids=repr,
)
def test_invalid_constructor_arguments_raise_configuration_error(
    db_path: Path, kwargs: dict[str, Any]
) -> None:
    queue = JobQueue(db_path)
    with pytest.raises(ConfigurationError):
        Scripted(queue, **kwargs)
    assert is_postgres(db_path) or not db_path.exists()  # nothing was opened or written


def test_a_worker_needs_a_job_queue(db_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        Scripted(str(db_path))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Scripted(None)  # type: ignore[arg-type]


def test_valid_constructor_arguments_are_accepted(db_path: Path) -> None:
    worker = Scripted(
        JobQueue(db_path),
        worker_id="w-1",
        concurrency=4,
        job_types=["ok", "block"],
        poll_interval=0.25,
        strategy="lifo",
        shutdown_grace_period=0,
        heartbeat_interval=2,
    )
    assert (worker.worker_id, worker.concurrency, worker.strategy) == ("w-1", 4, "lifo")
    assert not worker.is_running
    assert is_postgres(db_path) or not db_path.exists()
