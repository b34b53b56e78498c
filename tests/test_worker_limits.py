"""The seed's worker knobs: ``max_runs`` and ``max_consecutive_errors``."""

from __future__ import annotations

from typing import Any

import pytest

from asyncqueue import ConfigurationError, JobQueue, JobStatus, QueueWorker, WorkerError


class Scripted(QueueWorker):
    """Fails the jobs whose target starts with "bad", completes the others."""

    def __init__(self, queue: JobQueue, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.ran: list[str] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.ran.append(target_id)
        if target_id.startswith("bad"):
            raise RuntimeError(f"{target_id} failed")
        return True


async def test_max_runs_stops_after_that_many_jobs_and_releases_the_rest(
    queue: JobQueue,
) -> None:
    for i in range(10):
        await queue.enqueue("t", f"job{i}")

    worker = Scripted(queue, max_runs=4, concurrency=1)
    await worker.start()  # returns on its own

    assert len(worker.ran) == 4
    stats = await queue.get_queue_stats()
    assert (stats.completed_jobs, stats.pending_jobs, stats.processing_jobs) == (4, 6, 0)
    # Jobs claimed ahead went back without spending an attempt.
    for job in await queue.list_jobs(status=JobStatus.PENDING):
        assert job.retry_count == 0


async def test_max_consecutive_errors_stops_with_an_error_and_a_success_resets_the_count(
    queue: JobQueue,
) -> None:
    # Priority order makes the sequence: bad, bad, good, bad, bad, bad, (never) good.
    for priority, target in enumerate(["bad1", "bad2", "good1", "bad3", "bad4", "bad5", "good2"]):
        await queue.enqueue("t", target, priority=priority + 1, max_retries=0)

    worker = Scripted(queue, max_consecutive_errors=3, concurrency=1)
    with pytest.raises(WorkerError, match="3 failed attempts in a row"):
        await worker.start()

    assert worker.ran == ["bad1", "bad2", "good1", "bad3", "bad4", "bad5"]
    stats = await queue.get_queue_stats()
    assert (stats.failed_jobs, stats.completed_jobs, stats.pending_jobs) == (5, 1, 1)
    assert stats.active_workers == 0


@pytest.mark.parametrize("name", ["max_runs", "max_consecutive_errors"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5, "3"])
def test_limits_must_be_positive_ints(queue: JobQueue, name: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Scripted(queue, **{name: value})
