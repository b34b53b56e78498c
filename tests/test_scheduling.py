"""Which job runs next: priority, strategies, job type filters, delays; seen through a worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from asyncqueue import ConfigurationError, JobQueue, JobStatus, ManualClock, QueueWorker
from asyncqueue.storage.base import Strategy


class Recorder(QueueWorker):
    """Records (job_type, target_id) of every job it runs, in order; always succeeds."""

    def __init__(self, queue: JobQueue, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.calls: list[tuple[str, str]] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.calls.append((job_type, target_id))
        return True


class JobType(str, Enum):  # noqa: UP042 - the seed's style of app enum
    EMAIL = "email"
    SMS = "sms"


def targets(worker: Recorder) -> list[str]:
    return [target for _, target in worker.calls]


async def run(queue: JobQueue, **kwargs: Any) -> Recorder:
    worker = Recorder(queue, concurrency=1, **kwargs)
    await worker.run_until_idle()
    return worker


# -- priority and strategies ----------------------------------------------------------


async def test_priority_1_runs_before_10_then_oldest_first(queue: JobQueue) -> None:
    for target, priority in [("a", 10), ("b", 1), ("c", 5), ("d", 1), ("e", 10), ("f", 5)]:
        await queue.enqueue("t", target, priority=priority)

    worker = await run(queue)

    assert targets(worker) == ["b", "d", "c", "f", "a", "e"]


async def test_priority_is_the_default_strategy_across_job_types(queue: JobQueue) -> None:
    await queue.enqueue("low", "1", priority=9)
    await queue.enqueue_many(
        [
            {"job_type": "mid", "target_id": "2", "priority": 5},
            {"job_type": "high", "target_id": "3", "priority": 2},
        ]
    )
    await queue.enqueue("mid", "4")

    worker = await run(queue)

    assert worker.calls == [("high", "3"), ("mid", "2"), ("mid", "4"), ("low", "1")]


async def test_a_job_enqueued_while_draining_is_run_in_priority_order(queue: JobQueue) -> None:
    class Enqueuing(Recorder):
        async def process_job(
            self, job_type: str, target_id: str, metadata: dict[str, Any]
        ) -> bool:
            if target_id == "first":
                await self.queue.enqueue("t", "urgent", priority=1)
            return await super().process_job(job_type, target_id, metadata)

    await queue.enqueue("t", "first", priority=1)
    await queue.enqueue("t", "later", priority=8)

    worker = Enqueuing(queue, concurrency=1)
    assert await worker.run_until_idle() == 3

    assert targets(worker) == ["first", "urgent", "later"]


async def test_fifo_ignores_priority_and_runs_oldest_first(queue: JobQueue) -> None:
    for target, priority in [("a", 10), ("b", 1), ("c", 5), ("d", 1)]:
        await queue.enqueue("t", target, priority=priority)

    worker = await run(queue, strategy="fifo")

    assert targets(worker) == ["a", "b", "c", "d"]


async def test_lifo_ignores_priority_and_runs_newest_first(queue: JobQueue) -> None:
    for target, priority in [("a", 10), ("b", 1), ("c", 5), ("d", 1)]:
        await queue.enqueue("t", target, priority=priority)

    worker = await run(queue, strategy="lifo")

    assert targets(worker) == ["d", "c", "b", "a"]


@pytest.mark.parametrize("strategy", ["fifo", "lifo"])
async def test_fifo_and_lifo_claims_take_the_oldest_or_newest_across_all_priorities(
    queue: JobQueue, clock: ManualClock, strategy: Strategy
) -> None:
    """Claims in small batches over every priority, with jobs not yet due left alone."""
    ids = await queue.enqueue_many(
        [{"job_type": "t", "target_id": str(n), "priority": 1 + (n * 7) % 10} for n in range(95)]
    )
    later = await queue.enqueue("t", "later", priority=1, delay=60)
    order = list(ids) if strategy == "fifo" else list(reversed(ids))
    taken: list[int] = []
    while batch := await queue.claim("w", limit=7, strategy=strategy):
        taken.extend(job.id for job in batch)
    assert taken == order
    clock.advance(61)
    assert [job.id for job in await queue.claim("w", limit=7, strategy=strategy)] == [later]


@pytest.mark.parametrize("strategy", ["fifo", "lifo"])
async def test_concurrent_fifo_and_lifo_claimers_take_each_job_once(
    db_path: Path, strategy: Strategy
) -> None:
    async with JobQueue(db_path) as first, JobQueue(db_path) as second:
        ids = await first.enqueue_many(
            [{"job_type": "t", "target_id": str(n), "priority": 1 + n % 10} for n in range(600)]
        )

        async def claimer(queue: JobQueue, name: str) -> list[int]:
            taken: list[int] = []
            while batch := await queue.claim(name, limit=9, strategy=strategy):
                taken.extend(job.id for job in batch)
            return taken

        results = await asyncio.gather(
            *(claimer(queue, f"w{n}") for n, queue in enumerate([first, second] * 3))
        )
        every = [job_id for taken in results for job_id in taken]
        assert sorted(every) == sorted(ids)


async def test_within_a_priority_the_job_due_longest_goes_first(
    queue: JobQueue, clock: ManualClock
) -> None:
    """Due time, not enqueue order: a delayed job takes its turn from when it came due, a
    retried one from when its backoff ended."""
    delayed = await queue.enqueue("t", "delayed", delay=30)  # due at +30
    clock.advance(10)
    early = await queue.enqueue("t", "early")  # due at +10
    clock.advance(10)
    (attempt,) = await queue.claim("w", limit=1)
    assert attempt.id == early
    assert await queue.fail_attempt(attempt, "boom") is JobStatus.RETRY_SCHEDULED
    retry = await queue.get_job(early)
    assert retry is not None
    clock.advance(5)
    later = await queue.enqueue("t", "later")  # due at +25
    # The retry (a backoff of a second or two) came due before "later" was enqueued.
    assert retry.run_at.timestamp() < clock.now()
    clock.advance(3600)
    order = [(await queue.claim("w", limit=1))[0].id for _ in range(3)]
    assert order == [early, later, delayed]


@pytest.mark.parametrize("strategy", ["priority", "fifo", "lifo"])
async def test_delayed_jobs_ahead_of_due_ones_are_passed_over(
    queue: JobQueue, strategy: Strategy
) -> None:
    await queue.enqueue_many(
        [{"job_type": "t", "target_id": f"later-{n}", "delay": 3600} for n in range(300)]
    )
    due = await queue.enqueue_many(
        [{"job_type": "t", "target_id": f"now-{n}", "priority": 1 + n % 10} for n in range(30)]
    )
    taken: list[int] = []
    while batch := await queue.claim("w", limit=4, strategy=strategy):
        taken.extend(job.id for job in batch)
    assert sorted(taken) == sorted(due)


def test_an_unknown_strategy_is_refused(queue: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="strategy"):
        Recorder(queue, strategy="random")  # type: ignore[arg-type]


async def test_run_until_idle_reports_how_many_jobs_ran_and_completes_them(
    queue: JobQueue,
) -> None:
    ids = [await queue.enqueue("t", str(i)) for i in range(7)]
    worker = Recorder(queue, concurrency=1)

    assert await worker.run_until_idle() == 7
    assert await worker.run_until_idle() == 0

    for job_id in ids:
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.status is JobStatus.COMPLETED
        assert job.attempts == 1
    stats = await queue.get_queue_stats()
    assert (stats.completed_jobs, stats.pending_jobs) == (7, 0)


# -- job type filter ------------------------------------------------------------------


async def test_job_types_restricts_what_a_worker_claims(queue: JobQueue) -> None:
    email = await queue.enqueue("email", "1")
    sms = await queue.enqueue("sms", "2")
    push = await queue.enqueue("push", "3", priority=1)

    worker = await run(queue, job_types=["email", JobType.SMS])

    assert worker.calls == [("email", "1"), ("sms", "2")]
    assert [await status(queue, i) for i in (email, sms, push)] == [
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
        JobStatus.PENDING,
    ]
    other = await run(queue, job_types=[JobType.EMAIL])
    assert other.calls == []
    rest = await run(queue, job_types=["push"])
    assert rest.calls == [("push", "3")]


async def test_job_types_filter_keeps_priority_order(queue: JobQueue) -> None:
    await queue.enqueue("a", "1", priority=9)
    await queue.enqueue("b", "2", priority=1)
    await queue.enqueue("a", "3", priority=2)

    worker = await run(queue, job_types=["a"])

    assert worker.calls == [("a", "3"), ("a", "1")]


@pytest.mark.parametrize("job_types", [[], [""], [7]], ids=["empty", "blank", "int"])
def test_invalid_job_types_are_refused(queue: JobQueue, job_types: list[Any]) -> None:
    with pytest.raises(ConfigurationError):
        Recorder(queue, job_types=job_types)


# -- delays ---------------------------------------------------------------------------


async def status(queue: JobQueue, job_id: int) -> JobStatus:
    job = await queue.get_job(job_id)
    assert job is not None
    return job.status


async def test_a_delayed_job_waits_for_the_clock(queue: JobQueue, clock: ManualClock) -> None:
    now = clock.now()
    later = await queue.enqueue("t", "later", delay=60)
    worker = Recorder(queue, concurrency=1)

    assert await worker.run_until_idle() == 0
    job = await queue.get_job(later)
    assert job is not None
    assert job.status is JobStatus.PENDING
    assert job.run_at == datetime.fromtimestamp(now + 60, UTC)

    clock.advance(59.5)
    assert await worker.run_until_idle() == 0
    clock.advance(0.5)
    assert await worker.run_until_idle() == 1
    assert worker.calls == [("t", "later")]
    assert await status(queue, later) is JobStatus.COMPLETED


async def test_run_at_and_timedelta_delays(queue: JobQueue, clock: ManualClock) -> None:
    start = clock.now()
    await queue.enqueue("t", "at", run_at=datetime.fromtimestamp(start + 120, UTC))
    await queue.enqueue("t", "td", delay=timedelta(minutes=1))
    await queue.enqueue("t", "past", run_at=datetime.fromtimestamp(start - 10, UTC))
    await queue.enqueue("t", "now", delay=0)
    worker = Recorder(queue, concurrency=1)

    assert await worker.run_until_idle() == 2
    assert targets(worker) == ["past", "now"]

    clock.advance(60)
    assert await worker.run_until_idle() == 1
    clock.advance(59)
    assert await worker.run_until_idle() == 0
    clock.advance(1)
    assert await worker.run_until_idle() == 1
    assert targets(worker) == ["past", "now", "td", "at"]


async def test_run_at_in_another_timezone_is_the_same_instant(
    queue: JobQueue, clock: ManualClock
) -> None:
    plus_two = datetime.fromtimestamp(clock.now() + 30, timezone(timedelta(hours=2)))
    job_id = await queue.enqueue("t", "tz", run_at=plus_two)

    job = await queue.get_job(job_id)
    assert job is not None
    assert job.run_at.timestamp() == clock.now() + 30
    worker = Recorder(queue, concurrency=1)
    assert await worker.run_until_idle() == 0
    clock.advance(30)
    assert await worker.run_until_idle() == 1


async def test_a_due_delayed_job_keeps_its_priority(queue: JobQueue, clock: ManualClock) -> None:
    await queue.enqueue("t", "now-low", priority=9)
    await queue.enqueue("t", "delayed-high", priority=1, delay=10)
    clock.advance(10)

    worker = await run(queue)

    assert targets(worker) == ["delayed-high", "now-low"]


async def test_stats_report_delayed_jobs(queue: JobQueue, clock: ManualClock) -> None:
    await queue.enqueue("t", "a", delay=10)
    await queue.enqueue("t", "b", delay=100)
    await queue.enqueue("t", "c")

    stats = await queue.get_queue_stats()
    assert (stats.pending_jobs, stats.delayed_jobs, stats.total_jobs) == (3, 2, 3)

    clock.advance(10)
    stats = await queue.get_queue_stats()
    assert (stats.pending_jobs, stats.delayed_jobs) == (3, 1)

    await run(queue)
    stats = await queue.get_queue_stats()
    assert (stats.pending_jobs, stats.delayed_jobs, stats.completed_jobs) == (1, 1, 2)

    clock.advance(90)
    assert (await queue.get_queue_stats()).delayed_jobs == 0


async def test_a_delayed_job_can_be_cancelled_before_it_runs(
    queue: JobQueue, clock: ManualClock
) -> None:
    job_id = await queue.enqueue("t", "later", delay=60)

    assert await queue.cancel_job(job_id)
    clock.advance(120)

    worker = await run(queue)
    assert worker.calls == []
    assert await status(queue, job_id) is JobStatus.CANCELLED
    assert (await queue.get_queue_stats()).delayed_jobs == 0


async def test_a_worker_of_another_queue_object_sees_delayed_jobs_come_due(
    db_path: Path, clock: ManualClock
) -> None:
    async with (
        JobQueue(db_path, clock=clock) as producer,
        JobQueue(db_path, clock=clock) as consumer,
    ):
        await producer.enqueue("t", "x", delay=5)
        worker = Recorder(consumer, concurrency=1)
        assert await worker.run_until_idle() == 0
        clock.advance(5)
        assert await worker.run_until_idle() == 1
