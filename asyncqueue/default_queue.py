"""The module-level default queue that ``enqueue_job`` and ``get_queue_status`` act on.

An app sets it once, typically in its FastAPI lifespan::

    async with JobQueue("jobs.db") as queue:
        set_default_queue(queue)
        yield

Without that, the first call opens a fallback queue at ``QUEUE_DB_PATH`` (default
``./asyncqueue.db``), one per event loop, configured from the ``QUEUE_*`` variables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from asyncqueue.job import JobId
from asyncqueue.queue import JobQueue
from asyncqueue.validation import DEFAULT_PRIORITY

_default: JobQueue | None = None
_fallback: tuple[asyncio.AbstractEventLoop, JobQueue] | None = None


def set_default_queue(queue: JobQueue | None) -> None:
    """Make ``queue`` the one module-level helpers use; None returns to the fallback."""
    global _default
    if queue is not None and not isinstance(queue, JobQueue):
        raise TypeError(f"expected a JobQueue or None, got {type(queue).__name__}")
    _default = queue


def get_default_queue() -> JobQueue:
    """The queue set with ``set_default_queue``, else this event loop's fallback queue."""
    global _fallback
    if _default is not None:
        return _default
    loop = asyncio.get_running_loop()
    if _fallback is None or _fallback[0] is not loop or _fallback[1]._state == "closed":
        _fallback = (loop, JobQueue())
    return _fallback[1]


async def close_default_queue() -> None:
    """Close the fallback queue if one was opened (the app's own queue is the app's to close)."""
    global _fallback
    if _fallback is not None:
        queue = _fallback[1]
        _fallback = None
        await queue.close()


async def enqueue_job(
    job_type: str | Enum,
    target_id: str,
    *,
    priority: int = DEFAULT_PRIORITY,
    max_retries: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    delay: float | timedelta | None = None,
    run_at: datetime | None = None,
) -> JobId:
    """``JobQueue.enqueue`` on the default queue."""
    return await get_default_queue().enqueue(
        job_type,
        target_id,
        priority=priority,
        max_retries=max_retries,
        metadata=metadata,
        delay=delay,
        run_at=run_at,
    )


async def get_queue_status() -> dict[str, int]:
    """Counts by status on the default queue.

    Keys: 'pending', 'processing', 'retry_scheduled', 'completed', 'failed', 'cancelled',
    'delayed' (pending but not due yet), 'total' and 'active_workers'.
    """
    stats = await get_default_queue().get_queue_stats()
    return stats.as_status_dict()
