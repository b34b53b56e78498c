"""The jobs the benchmark enqueues, and the timed ways it enqueues them.

Jobs are no-ops of type ``"noop"`` with priority 5 and empty metadata (as in the peer
bench's asyncqueue adapter); target ids are distinct decimal integers, so each enqueue
creates a job and the job log can name it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asyncqueue import JobId, JobQueue

JOB_TYPE = "noop"
PRIORITY = 5


def job_item(job: int) -> dict[str, Any]:
    """The ``enqueue_many`` item for job number ``job``."""
    return {"job_type": JOB_TYPE, "target_id": str(job), "priority": PRIORITY, "metadata": {}}


async def enqueue_one(queue: JobQueue, job: int) -> JobId:
    """Enqueue job number ``job`` with one awaited ``enqueue()``."""
    return await queue.enqueue(JOB_TYPE, str(job), priority=PRIORITY, metadata={})


async def enqueue_sequential(queue: JobQueue, jobs: range) -> tuple[float, list[JobId]]:
    """Awaited ``enqueue()`` calls one after another; return (jobs/s, ids)."""
    ids: list[JobId] = []
    started = time.perf_counter()
    for job in jobs:
        ids.append(await enqueue_one(queue, job))
    return _rate(len(jobs), started), ids


async def enqueue_concurrent(
    queue: JobQueue, jobs: range, producers: int
) -> tuple[float, list[JobId]]:
    """``producers`` coroutines share ``jobs``, each enqueueing its share in turn."""

    async def produce(share: range) -> list[JobId]:
        return [await enqueue_one(queue, job) for job in share]

    shares = [jobs[k::producers] for k in range(producers)]
    started = time.perf_counter()
    results = await asyncio.gather(*(produce(share) for share in shares))
    return _rate(len(jobs), started), [job_id for ids in results for job_id in ids]


async def enqueue_chunks(queue: JobQueue, jobs: range, chunk: int) -> tuple[float, list[JobId]]:
    """``enqueue_many`` in chunks of ``chunk`` jobs; return (jobs/s, ids)."""
    ids: list[JobId] = []
    started = time.perf_counter()
    for start in range(0, len(jobs), chunk):
        ids.extend(await queue.enqueue_many([job_item(job) for job in jobs[start : start + chunk]]))
    return _rate(len(jobs), started), ids


def _rate(count: int, started: float) -> float:
    return count / max(time.perf_counter() - started, 1e-9)


class FillError(Exception):
    """Raised when pre-filling a queue did not create every job asked for."""


async def fill(queue: JobQueue, jobs: range, chunk: int) -> float:
    """Pre-fill ``jobs`` with ``enqueue_many`` in chunks of ``chunk``; return the seconds taken.

    Raises:
        FillError: some job was not created.
    """
    started = time.perf_counter()
    _, ids = await enqueue_chunks(queue, jobs, chunk)
    created = sum(1 for job_id in ids if job_id.created)
    if created != len(jobs):
        raise FillError(f"pre-fill created {created} of {len(jobs)} jobs")
    return time.perf_counter() - started
