"""Leases: fencing by lease token, stale-job recovery, and renewal that keeps long jobs safe.

Leases are short (``job_timeout_minutes=0.25``: 15 s) and time is a ManualClock, so expiry
is reached by advancing the clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import WatchedClock, job_of, wait_for_status

from asyncqueue import JobQueue, JobStatus, ManualClock, QueueWorker

#: job_timeout_minutes of every queue here, and the lease it gives in seconds.
TIMEOUT_MINUTES = 0.25
LEASE = 15.0
#: The worker's default heartbeat (and lease renewal) interval: a third of the lease.
HEARTBEAT = LEASE / 3
DEADLINE = 10.0


START = 1_800_000_000.0


@pytest.fixture
def clock() -> WatchedClock:
    return WatchedClock(start=START)


@pytest.fixture
async def queue(db_path: Path, clock: WatchedClock) -> AsyncIterator[JobQueue]:
    async with JobQueue(
        db_path, clock=clock, job_timeout_minutes=TIMEOUT_MINUTES, retry_base_delay=1.0
    ) as q:
        yield q


class Gated(QueueWorker):
    """Each job signals it started, then waits for the test to hand it its result."""

    def __init__(self, queue: JobQueue, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.started = asyncio.Event()
        self.result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.calls: list[str] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> Any:
        self.calls.append(target_id)
        self.started.set()
        outcome = await self.result
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def wait_for_event(event: asyncio.Event) -> None:
    async with asyncio.timeout(DEADLINE):
        await event.wait()


async def finish(task: asyncio.Task[Any]) -> Any:
    async with asyncio.timeout(DEADLINE):
        return await task


# -- recover_stale_jobs ------------------------------------------------------------------


async def test_an_expired_processing_job_goes_back_to_pending_with_the_attempt_counted(
    queue: JobQueue, clock: WatchedClock
) -> None:
    job_id = await queue.enqueue("t", "a", max_retries=2)
    [held] = await queue.claim("crashed-worker", limit=1)

    clock.advance(LEASE - 1.0)
    assert await queue.recover_stale_jobs() == 0
    assert (await job_of(queue, job_id)).status is JobStatus.PROCESSING

    clock.advance(2.0)  # one second past the lease
    assert await queue.recover_stale_jobs() == 1
    job = await job_of(queue, job_id)
    assert job.status is JobStatus.PENDING
    assert (job.retry_count, job.attempts) == (1, 1)
    assert job.lease_expires_at is None
    assert job.error_message is not None
    assert "lease" in job.error_message
    assert job.run_at.timestamp() <= clock.now()  # due again at once
    assert await queue.recover_stale_jobs() == 0  # idempotent

    [again] = await queue.claim("rescuer", limit=1)
    assert again.id == job_id
    assert again.lease_token != held.lease_token
    assert again.retry_count == 1
    assert await queue.complete(again)
    job = await job_of(queue, job_id)
    assert (job.status, job.retry_count, job.attempts) == (JobStatus.COMPLETED, 1, 2)


@pytest.mark.parametrize("max_retries", [0, 1, 2])
async def test_an_expired_job_with_no_retries_left_fails(
    queue: JobQueue, clock: WatchedClock, max_retries: int
) -> None:
    job_id = await queue.enqueue("t", "a", max_retries=max_retries)
    for crash in range(max_retries + 1):
        [held] = await queue.claim(f"crashed-{crash}", limit=1)
        assert held.id == job_id
        clock.advance(LEASE + 1.0)
        assert await queue.recover_stale_jobs() == 1

    job = await job_of(queue, job_id)
    assert job.status is JobStatus.FAILED
    assert (job.retry_count, job.attempts) == (max_retries, max_retries + 1)
    assert job.completed_at is not None
    assert job.error_message is not None
    assert "lease" in job.error_message
    assert [j.id for j in await queue.get_failed_jobs()] == [job_id]
    assert await queue.claim("anyone", limit=1) == []
    stats = await queue.get_queue_stats()
    assert (stats.failed_jobs, stats.processing_jobs, stats.pending_jobs) == (1, 0, 0)


async def test_recovery_takes_only_expired_leases(queue: JobQueue, clock: WatchedClock) -> None:
    old = await queue.enqueue("t", "old")
    [old_held] = await queue.claim("w1", limit=1)
    clock.advance(10.0)
    young = await queue.enqueue("t", "young")
    [young_held] = await queue.claim("w2", limit=1)
    assert young_held.id == young

    clock.advance(LEASE - 5.0)  # old: 20 s after its claim; young: 5 s before expiry
    assert await queue.recover_stale_jobs() == 1
    assert (await job_of(queue, old)).status is JobStatus.PENDING
    young_job = await job_of(queue, young)
    assert (young_job.status, young_job.worker_id) == (JobStatus.PROCESSING, "w2")
    assert await queue.complete(young_held)
    assert not await queue.complete(old_held)


# -- fencing -----------------------------------------------------------------------------


@pytest.mark.parametrize("rescuer_succeeds", [True, False])
async def test_a_late_result_after_recovery_and_reclaim_is_discarded(
    queue: JobQueue, clock: WatchedClock, rescuer_succeeds: bool
) -> None:
    job_id = await queue.enqueue("t", "a", max_retries=1)
    [first] = await queue.claim("w1", limit=1)
    clock.advance(LEASE + 1.0)
    assert await queue.recover_stale_jobs() == 1
    [second] = await queue.claim("w2", limit=1)
    assert second.id == first.id
    assert second.lease_token != first.lease_token

    before = await job_of(queue, job_id)
    assert (before.status, before.worker_id) == (JobStatus.PROCESSING, "w2")
    # w1 comes back with a result while w2 runs the job: every verb refuses it.
    assert await queue.complete(first) is False
    assert await queue.fail_attempt(first, "RuntimeError: late") is None
    assert await queue.release(first) is False
    assert await queue.renew_leases([first]) == set()
    assert await job_of(queue, job_id) == before

    # w2 decides.
    if rescuer_succeeds:
        assert await queue.complete(second) is True
        expected = JobStatus.COMPLETED
    else:
        assert await queue.fail_attempt(second, "RuntimeError: w2 failed") is JobStatus.FAILED
        expected = JobStatus.FAILED
    decided = await job_of(queue, job_id)
    assert decided.status is expected

    # w1's result arriving after w2 finished changes nothing either.
    assert await queue.complete(first) is False
    assert await queue.fail_attempt(first, "RuntimeError: late") is None
    assert await queue.release(first) is False
    assert await queue.renew_leases([first]) == set()
    assert await job_of(queue, job_id) == decided
    if not rescuer_succeeds:
        assert decided.error_message == "RuntimeError: w2 failed"


async def test_a_wrong_token_changes_nothing(queue: JobQueue, clock: WatchedClock) -> None:
    a = await queue.enqueue("t", "a")
    b = await queue.enqueue("t", "b")
    held = {job.id: job for job in await queue.claim("w1", limit=2)}
    assert set(held) == {a, b}
    forged = [
        dataclasses.replace(held[a], lease_token="0" * len(held[a].lease_token)),
        dataclasses.replace(held[a], lease_token=""),
        dataclasses.replace(held[a], lease_token=held[b].lease_token),  # another job's token
    ]
    before = {job_id: await job_of(queue, job_id) for job_id in (a, b)}
    clock.advance(5.0)

    for fake in forged:
        assert await queue.renew_leases([fake]) == set()
        assert await queue.complete(fake) is False
        assert await queue.fail_attempt(fake, "RuntimeError: forged") is None
        assert await queue.release(fake) is False
    assert {job_id: await job_of(queue, job_id) for job_id in (a, b)} == before

    # The real tokens still work.
    assert await queue.renew_leases(held.values()) == {a, b}
    renewed = await job_of(queue, a)
    assert renewed.lease_expires_at is not None
    assert renewed.lease_expires_at.timestamp() == clock.now() + LEASE
    assert await queue.complete(held[a]) is True
    assert await queue.release(held[b]) is True
    assert (await job_of(queue, a)).status is JobStatus.COMPLETED
    assert (await job_of(queue, b)).status is JobStatus.PENDING


@pytest.mark.parametrize("late_result", ["success_while_rescuer_runs", "failure_after_rescuer"])
async def test_a_worker_whose_lease_was_taken_over_has_its_result_discarded(
    queue: JobQueue, clock: WatchedClock, db_path: Path, late_result: str
) -> None:
    # w1 "hangs": it runs on its own clock, which never moves, so it never renews its lease
    # while the rest of the world (the test's clock) goes past it.
    frozen = ManualClock(start=START)
    job_id = await queue.enqueue("t", "a", max_retries=1)
    async with JobQueue(db_path, clock=frozen, job_timeout_minutes=TIMEOUT_MINUTES) as q1:
        w1 = Gated(q1, worker_id="w1")
        w2 = Gated(queue, worker_id="w2")
        t1 = asyncio.create_task(w1.start())
        t2: asyncio.Task[None] | None = None
        try:
            await wait_for_event(w1.started)
            clock.advance(LEASE + 1.0)
            assert await queue.recover_stale_jobs() == 1
            recovered = await job_of(queue, job_id)
            assert (recovered.status, recovered.retry_count) == (JobStatus.PENDING, 1)

            t2 = asyncio.create_task(w2.start())
            await wait_for_event(w2.started)
            assert (await job_of(queue, job_id)).worker_id == "w2"

            if late_result == "success_while_rescuer_runs":
                w1.result.set_result(True)
                async with asyncio.timeout(DEADLINE):
                    await w1.stop()  # returns once w1 has handled its job's outcome
                running = await job_of(queue, job_id)
                assert (running.status, running.worker_id) == (JobStatus.PROCESSING, "w2")
                w2.result.set_result(False)
                final = await wait_for_status(queue, job_id, JobStatus.FAILED)
                assert final.error_message is not None
                assert "False" in final.error_message
                assert w2.jobs_failed == 1
            else:
                w2.result.set_result(True)
                final = await wait_for_status(queue, job_id, JobStatus.COMPLETED)
                assert w2.jobs_processed == 1
                w1.result.set_result(RuntimeError("late failure"))
                async with asyncio.timeout(DEADLINE):
                    await w1.stop()
            assert (w1.jobs_processed, w1.jobs_failed) == (0, 0)
            assert await job_of(queue, job_id) == final
            assert (final.retry_count, final.attempts, final.worker_id) == (1, 2, "w2")
        finally:
            for worker in (w1, w2):
                if not worker.result.done():
                    worker.result.set_result(True)
            async with asyncio.timeout(DEADLINE):
                await w1.stop()
                await w2.stop()
            await finish(t1)
            if t2 is not None:
                await finish(t2)
    assert w1.calls == w2.calls == ["a"]


# -- renewal and the workers' own sweep --------------------------------------------------


async def test_a_long_job_of_a_live_worker_is_never_recovered(
    queue: JobQueue, clock: WatchedClock
) -> None:
    job_id = await queue.enqueue("t", "long", max_retries=0)
    worker = Gated(queue, worker_id="busy")
    assert worker.heartbeat_interval == HEARTBEAT
    task = asyncio.create_task(worker.start())
    try:
        await wait_for_event(worker.started)
        await clock.wait_for_sleeper(HEARTBEAT)
        step = HEARTBEAT / 2  # well under a third of the lease
        for _ in range(int(8 * LEASE / step)):  # eight leases long
            clock.advance(step)
            await clock.wait_for_sleeper(HEARTBEAT)  # the maintenance round is done
            assert await queue.recover_stale_jobs() == 0  # what any other sweeper would do
            job = await job_of(queue, job_id)
            assert (job.status, job.worker_id, job.attempts) == (JobStatus.PROCESSING, "busy", 1)
            assert job.lease_expires_at is not None
            assert job.lease_expires_at.timestamp() > clock.now() + LEASE - HEARTBEAT - step
        assert clock.now() >= START + 8 * LEASE
        worker.result.set_result(True)
        job = await wait_for_status(queue, job_id, JobStatus.COMPLETED)
        assert (job.retry_count, job.attempts) == (0, 1)
        assert worker.calls == ["long"]
    finally:
        if not worker.result.done():
            worker.result.set_result(True)
        async with asyncio.timeout(DEADLINE):
            await worker.stop()
        await finish(task)


async def test_a_running_worker_recovers_a_crashed_peers_job_on_its_own(
    queue: JobQueue, clock: WatchedClock
) -> None:
    job_id = await queue.enqueue("t", "orphan", max_retries=3)
    [_abandoned] = await queue.claim("crashed-peer", limit=1)  # its worker died holding it
    worker = Gated(queue, worker_id="sweeper", poll_interval=1.0)
    worker.result.set_result(True)
    task = asyncio.create_task(worker.start())
    try:
        await clock.wait_for_sleeper(HEARTBEAT)
        for _ in range(3):  # up to the lease's end: the job is left alone
            clock.advance(HEARTBEAT)
            await clock.wait_for_sleeper(HEARTBEAT)
            job = await job_of(queue, job_id)
            assert (job.status, job.worker_id) == (JobStatus.PROCESSING, "crashed-peer")

        clock.advance(HEARTBEAT)  # past the lease: the next sweep takes the job back
        await clock.wait_for_sleeper(HEARTBEAT)
        await clock.wait_for_sleeper(1.0)
        clock.advance(1.0)  # the next poll claims it
        job = await wait_for_status(queue, job_id, JobStatus.COMPLETED)
        assert (job.worker_id, job.retry_count, job.attempts) == ("sweeper", 1, 2)
        assert worker.calls == ["orphan"]
    finally:
        async with asyncio.timeout(DEADLINE):
            await worker.stop()
        await finish(task)
