"""A counter of the queue's enqueue notifications, which long polls wait on."""

from __future__ import annotations

import asyncio
import contextlib

from asyncqueue.queue import JobQueue


class EnqueueCounter:
    """Counts the queue's enqueue notifications; waiters wake when it moves.

    The queue notifies when this process enqueues, releases or retries a job, and when another
    process commits to the same database file (see ``JobQueue.add_enqueue_listener``). The
    count (``seq``) starts at 0 with each server process.

    Args:
        queue: the queue whose notifications are counted.
    """

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self.seq = 0
        self._changed = asyncio.Event()
        self._attached = False
        #: Set by :meth:`close`: long polls end at once, so a stopping server is not held up.
        self.closed = False

    def attach(self) -> None:
        """Start counting. Idempotent.

        Call it once the queue is open: the queue watches the file for other processes'
        commits only for listeners added while it is open.
        """
        if not self._attached and self._queue.is_open:
            self._queue.add_enqueue_listener(self._notified)
            self._attached = True

    def detach(self) -> None:
        """Stop counting. Idempotent."""
        if self._attached:
            self._queue.remove_enqueue_listener(self._notified)
            self._attached = False

    def close(self) -> None:
        """End every wait now and every later one at once (the server is stopping)."""
        self.closed = True
        self._wake()

    def _notified(self) -> None:
        self.seq += 1
        self._wake()

    def _wake(self) -> None:
        # Every waiter holds the event of its moment; a new one serves the next waiters.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, since: int, seconds: float) -> int:
        """Wait until the count differs from ``since``, or ``seconds`` have passed.

        A ``since`` above the count comes from a client of an earlier server process (the
        count restarted at 0): it gets the current count at once, to start again from.

        Returns:
            The count.
        """
        self.attach()
        if self.seq != since or seconds <= 0 or self.closed:
            return self.seq
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)
        return self.seq
