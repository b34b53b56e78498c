"""Claims for the seed's ``POST /api/tasks/claim``: at once, or by long poll."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from asyncqueue.job import ClaimedJob, Job
from asyncqueue.logs import get_logger
from asyncqueue.queue import JobQueue
from asyncqueue.server.notify import EnqueueCounter

#: Longest wait between two looks at a long poll's client, and between two reads of the
#: earliest due time for jobs that come due without a notification (see
#: ``JobQueue.wait_for_work``).
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

    While it waits it claims again only when something was enqueued or a task came due.

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
        if not waited and wait > 0:
            waited = True
            get_logger("asyncqueue.server").debug("claim.long_poll", worker_id=worker_id, wait=wait)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 or counter.closed:
                return []
            seq, due = await wait_for_news(
                queue,
                counter,
                since=seen,
                seconds=min(remaining, POLL_SLICE_SECONDS),
                job_types=job_types,
            )
            if await disconnected():
                return []
            if seq != seen or due:
                break


async def wait_for_news(
    queue: JobQueue,
    counter: EnqueueCounter,
    *,
    since: int,
    seconds: float,
    job_types: tuple[str, ...] | None,
) -> tuple[int, bool]:
    """Wait until the enqueue count moves past ``since``, a task of ``job_types`` is due, or
    ``seconds`` pass, claiming nothing.

    Returns:
        The count, and whether a task came due (or the server is stopping).
    """
    if counter.closed:
        # The server is stopping: the client's claim meets that (and backs off) rather
        # than a wait that would answer at once, again and again.
        return counter.seq, True
    if counter.seq != since or seconds <= 0:
        return counter.seq, False
    moved = asyncio.ensure_future(counter.wait(since, seconds))
    due = asyncio.ensure_future(queue.wait_for_work(POLL_SLICE_SECONDS, job_types))
    try:
        await asyncio.wait((moved, due), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (moved, due):
            waiter.cancel()
        # Their ends (a cancellation, or a closed queue's error) are of no more interest.
        await asyncio.gather(moved, due, return_exceptions=True)
    return counter.seq, due.done() and not due.cancelled() and due.exception() is None


async def read_claimed(queue: JobQueue, claimed: Sequence[ClaimedJob]) -> list[Job]:
    """The claimed jobs as stored: the full task objects a claim answers with."""
    return await queue.get_jobs(job.id for job in claimed)
