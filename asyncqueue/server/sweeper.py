"""The lease sweeper: the server takes back tasks whose remote worker stopped renewing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from asyncqueue.logs import get_logger
from asyncqueue.queue import JobQueue

#: Longest pause between two sweeps, in seconds.
MAX_SWEEP_INTERVAL = 10.0


def sweep_interval(queue: JobQueue) -> float:
    """Seconds between sweeps: a third of the lease, at most ``MAX_SWEEP_INTERVAL``."""
    return min(queue.lease_seconds / 3.0, MAX_SWEEP_INTERVAL)


async def run_lease_sweeper(queue: JobQueue, interval: float | None = None) -> None:
    """Call ``queue.recover_stale_jobs()`` every ``interval`` seconds, until cancelled.

    Local workers sweep on their own; remote workers cannot, so the server does. An error
    (the database busy, say) is logged and the next sweep comes as planned.

    Args:
        queue: the queue to sweep.
        interval: seconds between sweeps, on the queue's clock (default:
            :func:`sweep_interval`).
    """
    log = get_logger("asyncqueue.server.sweeper")
    seconds = sweep_interval(queue) if interval is None else interval
    while True:
        await queue.clock.sleep(seconds)
        try:
            recovered = await queue.recover_stale_jobs()
        except Exception as exc:  # noqa: BLE001 - the sweeper outlives any one failure
            log.error("sweeper.failed", error=f"{type(exc).__name__}: {exc}")
        else:
            if recovered:
                log.info("sweeper.recovered", jobs=recovered)


@contextlib.asynccontextmanager
async def lease_sweeper(queue: JobQueue, interval: float | None = None) -> AsyncIterator[None]:
    """Run :func:`run_lease_sweeper` for the duration of the block (for a lifespan).

    Example::

        @asynccontextmanager
        async def lifespan(app):
            async with queue, lease_sweeper(queue):
                yield
    """
    task = asyncio.create_task(run_lease_sweeper(queue, interval), name="asyncqueue-sweeper")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
