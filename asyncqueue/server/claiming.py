"""Claims for the seed's ``POST /api/tasks/claim``: at once, or by long poll."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from asyncqueue.job import ClaimedJob, Job
from asyncqueue.logs import get_logger
from asyncqueue.queue import JobQueue
from asyncqueue.server.notify import EnqueueCounter

#: Longest wait between two claim attempts of a long poll: a delayed task coming due sends
#: no notification, and a client that went away is noticed at the next attempt.
POLL_SLICE_SECONDS = 1.0


async def claim_tasks(
    queue: JobQueue,
    counter: EnqueueCounter,
    *,
    worker_id: str,
    limit: int,
    job_types: tuple[str, ...] | None,
    wait: float,
    lease_seconds: float | None,
    disconnected: Callable[[], Awaitable[bool]],
) -> list[Job]:
    """Claim up to ``limit`` tasks in the queue's order, waiting up to ``wait`` seconds for one.

    Returns:
        The claimed jobs as stored after the claim; empty if none came in time, the client
        went away or the server is stopping.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    counter.attach()
    waited = False
    while True:
        # Read before the attempt: an enqueue between the attempt and the wait moves the
        # count past it, so the wait returns at once rather than missing the notification.
        seen = counter.seq
        claimed = await queue.claim(worker_id, limit=limit, job_types=job_types)
        if claimed:
            if lease_seconds is not None:
                await queue.renew_leases(claimed, lease_seconds=lease_seconds)
            return await read_claimed(queue, claimed)
        remaining = deadline - loop.time()
        if remaining <= 0 or counter.closed:
            return []
        if not waited:
            waited = True
            get_logger("asyncqueue.server").debug("claim.long_poll", worker_id=worker_id, wait=wait)
        await counter.wait(seen, min(remaining, POLL_SLICE_SECONDS))
        if await disconnected():
            return []


async def read_claimed(queue: JobQueue, claimed: Sequence[ClaimedJob]) -> list[Job]:
    """The claimed jobs as stored: the full task objects a claim answers with."""
    return await queue.get_jobs(job.id for job in claimed)
