"""Debouncing the NOTIFY that wakes workers: at most one per interval, none owed.

The first enqueue of a quiet spell carries ``pg_notify`` in its own statement (the leading
edge, delivered at its commit). Enqueues within the next ``interval`` go without, and once
the interval has passed one NOTIFY follows for all of them (the trailing edge), sent only
after they committed, so a listener woken by it sees their jobs. NOTIFY takes a lock that
serialises commits server-wide; a busy producer no longer sends one per statement.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from asyncqueue.errors import AsyncQueueError

#: Seconds between two NOTIFYs of one queue object.
NOTIFY_INTERVAL = 0.005

_log = logging.getLogger("asyncqueue.postgres")


class NotifyDebouncer:
    """Decides which enqueue statement carries the NOTIFY, and sends the trailing one."""

    def __init__(
        self, send: Callable[[], Awaitable[None]], interval: float = NOTIFY_INTERVAL
    ) -> None:
        self._send = send
        self._interval = interval
        self._quiet_until = 0.0
        self._owed = False
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def take_leading_edge(self) -> bool:
        """Whether the statement about to run should carry the NOTIFY itself."""
        now = time.monotonic()
        if now < self._quiet_until:
            return False
        self._quiet_until = now + self._interval
        return True

    def owe(self) -> None:
        """A statement without NOTIFY committed jobs: make sure a NOTIFY follows."""
        self._owed = True
        if self._timer is None:
            delay = max(0.0, self._quiet_until - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._owed:
            return
        self._owed = False
        self._quiet_until = time.monotonic() + self._interval
        task = asyncio.get_running_loop().create_task(self._send_logged())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_logged(self) -> None:
        try:
            await self._send()
        except AsyncQueueError as exc:  # the workers' poll picks the jobs up
            _log.warning("postgres.notify_failed error=%r", exc)

    async def close(self) -> None:
        """Send what is owed now, then stop."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            if self._owed:
                self._owed = False
                await self._send_logged()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
