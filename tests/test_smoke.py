"""The shortest path through the library: enqueue, run, read the outcome."""

from __future__ import annotations

from typing import Any

from asyncqueue import JobQueue, JobStatus, QueueWorker


class Succeeds(QueueWorker):
    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        return True


async def test_enqueue_then_run_until_idle_completes_the_job(queue: JobQueue) -> None:
    job_id = await queue.enqueue("email", "user-1", metadata={"to": "a@example.com"})
    assert job_id.created

    ran = await Succeeds(queue).run_until_idle()

    assert ran == 1
    job = await queue.get_job(job_id)
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job["metadata"] == {"to": "a@example.com"}
