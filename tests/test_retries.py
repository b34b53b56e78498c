"""Retries with backoff, exhaustion, manual retry, cancel, cleanup, stats and reads."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from asyncqueue import (
    Job,
    JobQueue,
    JobStatus,
    ManualClock,
    QueueStats,
    QueueWorker,
    ValidationError,
    ValidationTypeError,
    enqueue_job,
    get_queue_status,
    set_default_queue,
)
from asyncqueue.default_queue import close_default_queue

DAY = 86400.0

Outcome = Callable[[str, str, dict[str, Any]], Awaitable[Any]]


class Scripted(QueueWorker):
    """Runs ``outcome`` for each job and records the calls."""

    def __init__(self, queue: JobQueue, outcome: Outcome, **kwargs: Any) -> None:
        super().__init__(queue, concurrency=1, **kwargs)
        self.outcome = outcome
        self.calls: list[str] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> Any:
        self.calls.append(target_id)
        return await self.outcome(job_type, target_id, metadata)


async def succeed(job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
    return True


async def return_false(job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
    return False


class PaymentDeclinedError(Exception):
    pass


async def raise_value_error(job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
    raise ValueError(f"bad input {target_id}")


async def raise_custom(job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
    raise PaymentDeclinedError("card expired")


async def return_none(job_type: str, target_id: str, metadata: dict[str, Any]) -> None:
    return None


async def by_target(job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
    """Succeeds unless the target says otherwise."""
    if target_id.startswith("fail"):
        return False
    if target_id.startswith("raise"):
        raise RuntimeError(target_id)
    return True


async def get(queue: JobQueue, job_id: int) -> Job:
    job = await queue.get_job(job_id)
    assert job is not None
    return job


def at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


# -- backoff --------------------------------------------------------------------------

FAILURES = [
    pytest.param(return_false, "process_job returned False", id="returns-False"),
    pytest.param(raise_value_error, "ValueError: bad input job-1", id="raises-ValueError"),
    pytest.param(raise_custom, "PaymentDeclinedError: card expired", id="raises-custom"),
    pytest.param(return_none, "process_job returned None instead of True", id="returns-None"),
]


@pytest.mark.parametrize(("outcome", "message"), FAILURES)
async def test_failed_attempts_back_off_exponentially_then_fail(
    db_path: Path, clock: ManualClock, outcome: Outcome, message: str
) -> None:
    async with JobQueue(
        db_path,
        clock=clock,
        retry_base_delay=2,
        retry_backoff_multiplier=3,
        retry_max_delay=1000,
        max_retries=3,
    ) as queue:
        job_id = await queue.enqueue("t", "job-1")
        worker = Scripted(queue, outcome)

        for retry_count, delay in enumerate([2, 6, 18]):
            assert await worker.run_until_idle() == 1
            job = await get(queue, job_id)
            assert job.status is JobStatus.RETRY_SCHEDULED
            assert job.run_at == at(clock.now() + delay)
            assert job.retry_count == retry_count + 1
            assert job.attempts == retry_count + 1
            assert job.error_message == message
            assert job["error_message"] == message
            assert job.completed_at is None

            assert await worker.run_until_idle() == 0
            clock.advance(delay - 0.25)
            assert await worker.run_until_idle() == 0
            clock.advance(0.25)

        assert await worker.run_until_idle() == 1
        job = await get(queue, job_id)
        assert job.status is JobStatus.FAILED
        assert job.retry_count == 3
        assert job.attempts == 4
        assert job.error_message == message
        assert job.completed_at == at(clock.now())
        assert worker.calls == ["job-1"] * 4

        clock.advance(DAY)
        assert await worker.run_until_idle() == 0
        assert len(worker.calls) == 4


async def test_default_backoff_doubles_from_the_base_delay(
    queue: JobQueue, clock: ManualClock
) -> None:
    assert queue.settings.retry_backoff_multiplier == 2.0
    job_id = await queue.enqueue("t", "1", max_retries=5)
    worker = Scripted(queue, return_false)

    delays = []
    for _ in range(5):
        await worker.run_until_idle()
        job = await get(queue, job_id)
        delay = job.run_at.timestamp() - clock.now()
        delays.append(delay)
        clock.advance(delay)

    assert delays == [1, 2, 4, 8, 16]


async def test_retry_max_delay_caps_the_backoff(db_path: Path, clock: ManualClock) -> None:
    async with JobQueue(
        db_path,
        clock=clock,
        retry_base_delay=10,
        retry_backoff_multiplier=3,
        retry_max_delay=50,
        max_retries=4,
    ) as queue:
        job_id = await queue.enqueue("t", "1")
        worker = Scripted(queue, return_false)

        delays = []
        for _ in range(4):
            assert await worker.run_until_idle() == 1
            job = await get(queue, job_id)
            assert job.status is JobStatus.RETRY_SCHEDULED
            delays.append(job.run_at.timestamp() - clock.now())
            clock.advance(delays[-1])

        assert delays == [10, 30, 50, 50]
        assert await worker.run_until_idle() == 1
        assert (await get(queue, job_id)).status is JobStatus.FAILED


async def test_max_retries_zero_means_one_attempt(queue: JobQueue) -> None:
    job_id = await queue.enqueue("t", "1", max_retries=0)
    worker = Scripted(queue, raise_value_error)

    assert await worker.run_until_idle() == 1

    job = await get(queue, job_id)
    assert job.status is JobStatus.FAILED
    assert (job.attempts, job.retry_count) == (1, 0)
    assert job.error_message == "ValueError: bad input 1"


async def run_to_the_end(queue: JobQueue, clock: ManualClock, worker: Scripted) -> None:
    """Run, advancing the clock past every backoff, until nothing is left to retry."""
    while True:
        await worker.run_until_idle()
        if (await queue.get_queue_stats()).retry_scheduled_jobs == 0:
            return
        clock.advance(3600)


@pytest.mark.parametrize(("job_max_retries", "attempts"), [(None, 3), (0, 1), (1, 2), (4, 5)])
async def test_per_job_max_retries_overrides_the_queue_default(
    db_path: Path, clock: ManualClock, job_max_retries: int | None, attempts: int
) -> None:
    async with JobQueue(db_path, clock=clock, max_retries=2) as queue:
        job_id = await queue.enqueue("t", "1", max_retries=job_max_retries)
        worker = Scripted(queue, return_false)

        await run_to_the_end(queue, clock, worker)

        job = await get(queue, job_id)
        assert job.max_retries == (2 if job_max_retries is None else job_max_retries)
        assert job.status is JobStatus.FAILED
        assert job.attempts == attempts
        assert len(worker.calls) == attempts


async def test_a_job_succeeding_on_a_retry_is_completed(
    queue: JobQueue, clock: ManualClock
) -> None:
    job_id = await queue.enqueue("t", "1", max_retries=3)
    attempts = 0

    async def third_time_lucky(job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("upstream down")
        return True

    await run_to_the_end(queue, clock, Scripted(queue, third_time_lucky))

    job = await get(queue, job_id)
    assert job.status is JobStatus.COMPLETED
    assert (job.attempts, job.retry_count) == (3, 2)
    assert job.completed_at == at(clock.now())


async def test_an_exception_does_not_stop_the_worker(queue: JobQueue) -> None:
    await queue.enqueue("t", "raise-1", priority=1, max_retries=0)
    await queue.enqueue("t", "fine-2", priority=2)
    await queue.enqueue("t", "raise-3", priority=3, max_retries=0)
    await queue.enqueue("t", "fine-4", priority=4)
    worker = Scripted(queue, by_target)

    assert await worker.run_until_idle() == 4

    assert worker.calls == ["raise-1", "fine-2", "raise-3", "fine-4"]
    stats = await queue.get_queue_stats()
    assert (stats.completed_jobs, stats.failed_jobs) == (2, 2)
    failed = await queue.get_failed_jobs()
    assert sorted(j.error_message or "" for j in failed) == [
        "RuntimeError: raise-1",
        "RuntimeError: raise-3",
    ]


# -- manual retry ---------------------------------------------------------------------


async def test_retry_job_moves_a_failed_job_back_to_pending_now(
    queue: JobQueue, clock: ManualClock
) -> None:
    job_id = await queue.enqueue("t", "fail-1", max_retries=1)
    await run_to_the_end(queue, clock, Scripted(queue, by_target))
    assert (await get(queue, job_id)).status is JobStatus.FAILED
    clock.advance(100)

    assert await queue.retry_job(job_id) is True

    job = await get(queue, job_id)
    assert job.status is JobStatus.PENDING
    assert job.retry_count == 0
    assert job.run_at == at(clock.now())
    assert job.completed_at is None
    worker = Scripted(queue, succeed)
    assert await worker.run_until_idle() == 1
    assert (await get(queue, job_id)).status is JobStatus.COMPLETED


async def test_a_retried_job_gets_its_full_retries_again(
    queue: JobQueue, clock: ManualClock
) -> None:
    job_id = await queue.enqueue("t", "1", max_retries=1)
    worker = Scripted(queue, return_false)
    await run_to_the_end(queue, clock, worker)
    assert len(worker.calls) == 2

    assert await queue.retry_job(job_id)
    await run_to_the_end(queue, clock, worker)

    assert len(worker.calls) == 4
    job = await get(queue, job_id)
    assert (job.status, job.retry_count) == (JobStatus.FAILED, 1)


async def test_retry_job_moves_a_cancelled_job_back_to_pending(
    queue: JobQueue, clock: ManualClock
) -> None:
    job_id = await queue.enqueue("t", "1", delay=3600)
    assert await queue.cancel_job(job_id)
    clock.advance(5)

    assert await queue.retry_job(job_id) is True

    job = await get(queue, job_id)
    assert (job.status, job.retry_count) == (JobStatus.PENDING, 0)
    assert job.run_at == at(clock.now())
    assert await Scripted(queue, succeed).run_until_idle() == 1


async def test_retry_job_refuses_when_an_active_job_holds_the_pair(queue: JobQueue) -> None:
    failed_id = await queue.enqueue("t", "fail-1", max_retries=0)
    await Scripted(queue, by_target).run_until_idle()
    before = await get(queue, failed_id)
    newer = await queue.enqueue("t", "fail-1")
    assert newer.created

    assert await queue.retry_job(failed_id) is False

    assert await get(queue, failed_id) == before
    assert (await queue.get_queue_stats()).pending_jobs == 1
    assert await queue.cancel_job(newer)
    assert await queue.retry_job(failed_id) is True


async def test_retry_job_refuses_when_the_pair_is_held_by_a_retry_scheduled_job(
    queue: JobQueue,
) -> None:
    cancelled = await queue.enqueue("t", "fail-1")
    assert await queue.cancel_job(cancelled)
    scheduled = await queue.enqueue("t", "fail-1", max_retries=2)
    await Scripted(queue, by_target).run_until_idle()
    assert (await get(queue, scheduled)).status is JobStatus.RETRY_SCHEDULED

    assert await queue.retry_job(cancelled) is False
    assert (await get(queue, cancelled)).status is JobStatus.CANCELLED


async def test_retry_job_returns_false_for_jobs_it_cannot_retry(
    queue: JobQueue, clock: ManualClock
) -> None:
    completed = await queue.enqueue("t", "done")
    scheduled = await queue.enqueue("t", "fail-later", max_retries=1)
    await Scripted(queue, by_target).run_until_idle()
    pending = await queue.enqueue("t", "pending")
    results_while_processing: list[bool] = []

    async def retry_self(job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        job = (await queue.list_jobs(status="processing"))[0]
        results_while_processing.append(await queue.retry_job(job.id))
        return True

    before = {i: await get(queue, i) for i in (completed, scheduled, pending)}
    assert await queue.retry_job(completed) is False
    assert await queue.retry_job(scheduled) is False
    assert await queue.retry_job(pending) is False
    assert await queue.retry_job(999_999) is False
    assert {i: await get(queue, i) for i in before} == before

    await Scripted(queue, retry_self, job_types=["t"]).run_until_idle()
    assert results_while_processing == [False]


@pytest.mark.parametrize("bad_id", ["1", 1.0, None, True])
async def test_retry_and_cancel_refuse_ids_that_are_not_ints(queue: JobQueue, bad_id: Any) -> None:
    with pytest.raises(ValidationTypeError):
        await queue.retry_job(bad_id)
    with pytest.raises(ValidationTypeError):
        await queue.cancel_job(bad_id)


# -- cancel ---------------------------------------------------------------------------


async def test_cancel_job_cancels_a_pending_job(queue: JobQueue, clock: ManualClock) -> None:
    job_id = await queue.enqueue("t", "1")
    clock.advance(3)

    assert await queue.cancel_job(job_id) is True

    job = await get(queue, job_id)
    assert job.status is JobStatus.CANCELLED
    assert job.completed_at == at(clock.now())
    assert await Scripted(queue, succeed).run_until_idle() == 0
    assert await queue.cancel_job(job_id) is False


async def test_cancel_job_cancels_a_retry_scheduled_job(
    queue: JobQueue, clock: ManualClock
) -> None:
    job_id = await queue.enqueue("t", "fail-1", max_retries=3)
    worker = Scripted(queue, by_target)
    await worker.run_until_idle()
    assert (await get(queue, job_id)).status is JobStatus.RETRY_SCHEDULED

    assert await queue.cancel_job(job_id) is True

    clock.advance(DAY)
    assert await worker.run_until_idle() == 0
    assert (await get(queue, job_id)).status is JobStatus.CANCELLED


async def test_cancel_job_returns_false_for_every_other_status(queue: JobQueue) -> None:
    completed = await queue.enqueue("t", "done")
    failed = await queue.enqueue("t", "fail", max_retries=0)
    await Scripted(queue, by_target).run_until_idle()
    while_processing: list[bool] = []

    async def cancel_self(job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        job = (await queue.list_jobs(status=JobStatus.PROCESSING))[0]
        while_processing.append(await queue.cancel_job(job.id))
        return True

    running = await queue.enqueue("t", "running")
    await Scripted(queue, cancel_self).run_until_idle()

    assert while_processing == [False]
    assert (await get(queue, running)).status is JobStatus.COMPLETED
    assert await queue.cancel_job(completed) is False
    assert await queue.cancel_job(failed) is False
    assert await queue.cancel_job(12345) is False
    assert (await get(queue, completed)).status is JobStatus.COMPLETED
    assert (await get(queue, failed)).status is JobStatus.FAILED


# -- cleanup --------------------------------------------------------------------------


async def finish_one_of_each(queue: JobQueue) -> dict[str, int]:
    ids = {
        "completed": await queue.enqueue("t", "done"),
        "failed": await queue.enqueue("t", "fail", max_retries=0),
        "cancelled": await queue.enqueue("t", "cancel-me"),
    }
    assert await queue.cancel_job(ids["cancelled"])
    await Scripted(queue, by_target).run_until_idle()
    ids["pending"] = await queue.enqueue("t", "waiting", delay=30 * DAY)
    return ids


async def remaining(queue: JobQueue) -> set[str]:
    return {job.status.value for job in await queue.list_jobs()}


async def test_cleanup_deletes_completed_and_cancelled_jobs_older_than_days(
    queue: JobQueue, clock: ManualClock
) -> None:
    await finish_one_of_each(queue)
    clock.advance(0.5 * DAY)

    assert await queue.cleanup_old_jobs(days=1) == 0
    assert await queue.cleanup_old_jobs(days=0.75) == 0
    assert await remaining(queue) == {"completed", "failed", "cancelled", "pending"}

    assert await queue.cleanup_old_jobs(days=0.25) == 2

    assert await remaining(queue) == {"failed", "pending"}
    stats = await queue.get_queue_stats()
    assert (stats.total_jobs, stats.completed_jobs, stats.cancelled_jobs) == (2, 0, 0)
    assert await queue.cleanup_old_jobs(days=0) == 0


async def test_cleanup_keeps_a_job_finished_exactly_days_ago(
    queue: JobQueue, clock: ManualClock
) -> None:
    await finish_one_of_each(queue)
    clock.advance(2 * DAY)

    assert await queue.cleanup_old_jobs(days=2) == 0
    clock.advance(1)
    assert await queue.cleanup_old_jobs(days=2) == 2


async def test_cleanup_only_deletes_the_old_ones(queue: JobQueue, clock: ManualClock) -> None:
    old = await queue.enqueue("t", "old")
    await Scripted(queue, succeed).run_until_idle()
    clock.advance(3 * DAY)
    recent = await queue.enqueue("t", "recent")
    await Scripted(queue, succeed).run_until_idle()
    clock.advance(1 * DAY)

    assert await queue.cleanup_old_jobs(days=2) == 1

    assert await queue.get_job(old) is None
    assert (await get(queue, recent)).status is JobStatus.COMPLETED


async def test_cleanup_defaults_to_cleanup_after_days(queue: JobQueue, clock: ManualClock) -> None:
    assert queue.settings.cleanup_after_days == 7
    await finish_one_of_each(queue)

    clock.advance(7 * DAY)
    assert await queue.cleanup_old_jobs() == 0
    clock.advance(1)
    assert await queue.cleanup_old_jobs() == 2
    assert await remaining(queue) == {"failed", "pending"}


async def test_cleanup_after_days_setting_accepts_fractions(
    db_path: Path, clock: ManualClock
) -> None:
    async with JobQueue(db_path, clock=clock, cleanup_after_days=0.5) as queue:
        await finish_one_of_each(queue)
        clock.advance(0.5 * DAY - 1)
        assert await queue.cleanup_old_jobs() == 0
        clock.advance(2)
        assert await queue.cleanup_old_jobs() == 2


async def test_a_failed_job_stays_however_old(queue: JobQueue, clock: ManualClock) -> None:
    ids = await finish_one_of_each(queue)
    clock.advance(365 * DAY)

    assert await queue.cleanup_old_jobs(days=0) == 2

    assert (await get(queue, ids["failed"])).status is JobStatus.FAILED
    assert [j.id for j in await queue.get_failed_jobs()] == [ids["failed"]]


@pytest.mark.parametrize("days", [-1, float("nan"), "7", True])
async def test_cleanup_refuses_bad_days(queue: JobQueue, days: Any) -> None:
    await finish_one_of_each(queue)

    with pytest.raises(ValidationError):
        await queue.cleanup_old_jobs(days=days)

    assert (await queue.get_queue_stats()).total_jobs == 4


# -- stats and the module-level helpers -----------------------------------------------


@pytest.fixture
def default_queue(queue: JobQueue) -> Iterator[JobQueue]:
    set_default_queue(queue)
    yield queue
    set_default_queue(None)


async def test_stats_and_get_queue_status_report_every_status(
    default_queue: JobQueue, clock: ManualClock
) -> None:
    queue = default_queue
    await queue.enqueue("setup", "done")
    await queue.enqueue("setup", "fail", max_retries=0)
    await queue.enqueue("setup", "fail-retry", max_retries=2)
    await Scripted(queue, by_target, job_types=["setup"]).run_until_idle()
    assert await queue.cancel_job(await queue.enqueue("setup", "cancelled"))
    await queue.enqueue("other", "waiting")
    await queue.enqueue("other", "later", delay=3600)
    await queue.enqueue("probe", "now")
    during: list[tuple[QueueStats, dict[str, int]]] = []

    async def probe(job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        during.append((await queue.get_queue_stats(), await get_queue_status()))
        return True

    await Scripted(queue, probe, job_types=["probe"]).run_until_idle()

    stats, status = during[0]
    assert stats == QueueStats(
        total_jobs=7,
        pending_jobs=2,
        processing_jobs=1,
        retry_scheduled_jobs=1,
        completed_jobs=1,
        failed_jobs=1,
        cancelled_jobs=1,
        delayed_jobs=1,
        active_workers=1,
    )
    assert stats["pending_jobs"] == 2
    assert status == {
        "pending": 2,
        "processing": 1,
        "retry_scheduled": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
        "delayed": 1,
        "total": 7,
        "active_workers": 1,
    }
    after = await get_queue_status()
    assert after == {**status, "processing": 0, "completed": 2, "active_workers": 0}
    assert await queue.get_queue_stats() == QueueStats(
        total_jobs=7,
        pending_jobs=2,
        processing_jobs=0,
        retry_scheduled_jobs=1,
        completed_jobs=2,
        failed_jobs=1,
        cancelled_jobs=1,
        delayed_jobs=1,
        active_workers=0,
    )
    assert json.loads(json.dumps(stats.to_dict()))["total_jobs"] == 7


async def test_stats_of_an_empty_queue(default_queue: JobQueue) -> None:
    assert await get_queue_status() == {
        "pending": 0,
        "processing": 0,
        "retry_scheduled": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "delayed": 0,
        "total": 0,
        "active_workers": 0,
    }


class AppJob(str, Enum):  # noqa: UP042 - the seed's style of app enum
    REPORT = "report"


async def test_enqueue_job_acts_on_the_default_queue(
    default_queue: JobQueue, clock: ManualClock
) -> None:
    job_id = await enqueue_job(AppJob.REPORT, "42", priority=2, metadata={"x": 1}, delay=60)

    assert job_id.created
    job = await get(default_queue, job_id)
    assert (job.job_type, job.target_id, job.priority, job.metadata) == (
        "report",
        "42",
        2,
        {"x": 1},
    )
    assert job.run_at == at(clock.now() + 60)
    again = await enqueue_job("report", "42")
    assert again == job_id
    assert not again.created
    with pytest.raises(ValidationError):
        await enqueue_job("report", "43", priority=0)
    assert (await get_queue_status())["total"] == 1


async def test_without_a_default_queue_the_helpers_use_queue_db_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "fallback.db"
    monkeypatch.setenv("QUEUE_DB_PATH", str(path))
    set_default_queue(None)
    try:
        job_id = await enqueue_job("t", "1")
        assert (await get_queue_status())["pending"] == 1
    finally:
        await close_default_queue()

    async with JobQueue(path) as queue:
        assert (await get(queue, job_id)).target_id == "1"


def test_set_default_queue_refuses_other_objects() -> None:
    with pytest.raises(TypeError):
        set_default_queue("jobs.db")  # type: ignore[arg-type]


# -- reads ----------------------------------------------------------------------------


async def test_get_failed_jobs_returns_the_newest_failed_jobs(queue: JobQueue) -> None:
    await queue.enqueue("t", "done")
    failed = [await queue.enqueue("t", f"fail-{i}", max_retries=0) for i in range(3)]
    await Scripted(queue, by_target).run_until_idle()

    newest_two = await queue.get_failed_jobs(limit=2)
    every = await queue.get_failed_jobs()

    assert [j.id for j in newest_two] == [failed[2], failed[1]]
    assert [j.id for j in every] == failed[::-1]
    assert all(j.status is JobStatus.FAILED for j in every)
    assert [j["error_message"] for j in every] == ["process_job returned False"] * 3


async def test_list_jobs_filters_by_status_type_and_limit(queue: JobQueue) -> None:
    a1 = await queue.enqueue(AppJob.REPORT, "1")
    a2 = await queue.enqueue(AppJob.REPORT, "fail-2", max_retries=0)
    b1 = await queue.enqueue("email", "3")
    await Scripted(queue, by_target, job_types=["report"]).run_until_idle()
    a3 = await queue.enqueue("report", "4")
    b2 = await queue.enqueue("email", "5")
    assert await queue.cancel_job(b2)

    def ids(jobs: list[Job]) -> list[int]:
        return [j.id for j in jobs]

    assert ids(await queue.list_jobs()) == [b2, a3, b1, a2, a1]
    assert ids(await queue.list_jobs(limit=2)) == [b2, a3]
    assert ids(await queue.list_jobs(status="pending")) == [a3, b1]
    assert ids(await queue.list_jobs(status=JobStatus.COMPLETED)) == [a1]
    assert ids(await queue.list_jobs(status=["failed", JobStatus.CANCELLED])) == [b2, a2]
    assert ids(await queue.list_jobs(job_type="report")) == [a3, a2, a1]
    assert ids(await queue.list_jobs(job_type=AppJob.REPORT, status="pending")) == [a3]
    assert ids(await queue.list_jobs(job_type="email", status="pending", limit=5)) == [b1]
    assert await queue.list_jobs(job_type="nothing") == []
    assert await queue.list_jobs(status="processing") == []


@pytest.mark.parametrize(
    "kwargs",
    [{"status": "done"}, {"status": ["pending", "nope"]}, {"limit": 0}, {"limit": "5"}],
    ids=repr,
)
async def test_list_jobs_refuses_bad_filters(queue: JobQueue, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        await queue.list_jobs(**kwargs)


async def test_get_job_of_an_unknown_id_is_none(queue: JobQueue) -> None:
    assert await queue.get_job(1) is None
    with pytest.raises(ValidationTypeError):
        await queue.get_job("1")  # type: ignore[arg-type]


async def test_job_fields_are_attributes_and_items(queue: JobQueue, clock: ManualClock) -> None:
    job_id = await queue.enqueue("t", "fail-1", priority=3, metadata={"k": [1]}, max_retries=0)
    await Scripted(queue, by_target).run_until_idle()

    job = await get(queue, job_id)

    assert job["id"] == job.id == job_id
    assert job["job_type"] == job.job_type == "t"
    assert job["target_id"] == job.target_id == "fail-1"
    assert job["status"] == job.status == "failed"
    assert job["priority"] == job.priority == 3
    assert job["retry_count"] == job.retry_count == 0
    assert job["max_retries"] == job.max_retries == 0
    assert job["attempts"] == job.attempts == 1
    assert job["metadata"] == job.metadata == {"k": [1]}
    assert job["error_message"] == job.error_message == "process_job returned False"
    assert job["created_at"] == job.created_at == at(clock.now())
    assert job["completed_at"] == job.completed_at == at(clock.now())
    assert job.get("nope", "default") == "default"
    with pytest.raises(KeyError):
        job["nope"]
    as_dict = dict(job)
    assert as_dict["id"] == job_id
    assert as_dict["status"] is JobStatus.FAILED
    encoded = json.loads(json.dumps(job.to_dict()))
    assert encoded["status"] == "failed"
    assert encoded["created_at"] == at(clock.now()).isoformat()
    with pytest.raises(AttributeError):
        job.status = JobStatus.PENDING  # type: ignore[misc]
