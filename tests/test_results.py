"""A job's result: ``JobResult(value)`` from ``process_job`` is stored and read back."""

from __future__ import annotations

from typing import Any

from asyncqueue import JobQueue, JobResult, JobStatus, QueueWorker


class Producing(QueueWorker):
    """Returns what each job's metadata asks for."""

    async def process_job(
        self, job_type: str, target_id: str, metadata: dict[str, Any]
    ) -> bool | JobResult:
        if "result" in metadata:
            return JobResult(metadata["result"])
        if metadata.get("unstorable"):
            return JobResult({"value": float("nan")})
        if metadata.get("huge"):
            return JobResult("x" * 100_000)
        return True


async def test_a_result_is_stored_with_the_job_and_true_keeps_none(queue: JobQueue) -> None:
    values: list[Any] = [{"shorts": [1, 2], "q": "é"}, [1, "a"], "text", 3.5, None, False]
    ids = [await queue.enqueue("t", f"r{i}", metadata={"result": v}) for i, v in enumerate(values)]
    plain = await queue.enqueue("t", "plain")

    assert await Producing(queue, concurrency=3).run_until_idle() == len(values) + 1

    for job_id, value in zip(ids, values, strict=True):
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.status is JobStatus.COMPLETED
        assert job.result == value
        assert job.to_dict()["result"] == value
    job = await queue.get_job(plain)
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.result is None


async def test_a_result_that_cannot_be_stored_fails_the_attempt(queue: JobQueue) -> None:
    nan = await queue.enqueue("t", "nan", metadata={"unstorable": True}, max_retries=0)
    huge = await queue.enqueue("t", "huge", metadata={"huge": True}, max_retries=0)

    await Producing(queue).run_until_idle()

    for job_id, reason in ((nan, "not JSON-serialisable"), (huge, "the limit is")):
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.status is JobStatus.FAILED
        assert job.result is None
        assert reason in (job.error_message or "")


async def test_a_retry_after_a_failure_keeps_no_result_until_it_completes(
    queue: JobQueue,
) -> None:
    job_id = await queue.enqueue("t", "x", metadata={"result": {"ok": 1}})
    [held] = await queue.claim("w", limit=1)
    assert await queue.fail_attempt(held, "boom") is JobStatus.RETRY_SCHEDULED
    job = await queue.get_job(job_id)
    assert job is not None
    assert job.result is None
    queue.clock.advance(5)  # type: ignore[attr-defined]
    await Producing(queue).run_until_idle()
    job = await queue.get_job(job_id)
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.result == {"ok": 1}
