"""Concurrent single enqueues sharing one statement, as SQLite's writer merges them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from asyncqueue.job import JobId
from asyncqueue.validation import NewJob

#: Most jobs one shared statement carries.
MAX_BATCH = 1000
#: Statements in flight at once: enqueues arriving meanwhile wait for the next one.
MAX_IN_FLIGHT = 4

InsertBatch = Callable[[Sequence[tuple[NewJob, float]]], Awaitable[list[JobId]]]


class EnqueueBatcher:
    """Collects the enqueues made while a statement is in flight into the next statement.

    An enqueue on an idle queue goes out at once, from the caller's own task: no task, no
    turn of the event loop and no future in the way of a sequential enqueue (measured:
    1,850 -> 2,100 enqueues/s against a statement alone at 2,700/s). Enqueues made while
    statements are in flight wait for the next one, which carries them all. Each caller gets
    its own job's id; a failed statement fails every enqueue it carried, none of which was
    then committed.
    """

    def __init__(self, insert: InsertBatch, insert_lone: InsertBatch | None = None) -> None:
        """``insert`` runs a shared statement; ``insert_lone`` (default ``insert``) one
        enqueue from its caller's task, with nothing else in flight."""
        self._insert = insert
        self._insert_lone = insert_lone or insert
        self._waiting: list[tuple[NewJob, float, asyncio.Future[JobId]]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        #: Lone enqueues in flight from their callers' own tasks.
        self._direct = 0

    async def submit(self, job: NewJob, now: float) -> JobId:
        """Insert ``job`` in the next shared statement; return its id."""
        if not self._direct and not self._flushers and not self._waiting:
            return await self._submit_direct(job, now)
        future: asyncio.Future[JobId] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, now, future))
        if len(self._flushers) + self._direct < MAX_IN_FLIGHT:
            self._start_flusher()
        return await future

    async def _submit_direct(self, job: NewJob, now: float) -> JobId:
        self._direct += 1
        try:
            (job_id,) = await self._insert_lone([(job, now)])
        finally:
            self._direct -= 1
            if self._waiting and len(self._flushers) < MAX_IN_FLIGHT:
                self._start_flusher()
        return job_id

    def _start_flusher(self) -> None:
        task = asyncio.get_running_loop().create_task(self._flush())
        self._flushers.add(task)
        task.add_done_callback(self._flushers.discard)

    async def _flush(self) -> None:
        await asyncio.sleep(0)
        while self._waiting:
            batch = self._waiting[:MAX_BATCH]
            del self._waiting[:MAX_BATCH]
            try:
                ids = await self._insert([(job, now) for job, now, _ in batch])
            except BaseException as exc:
                for _, _, future in batch:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
                if isinstance(exc, Exception):
                    continue
                raise
            for (_, _, future), job_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(job_id)

    async def drain(self) -> None:
        """Wait for the statements in flight."""
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)
