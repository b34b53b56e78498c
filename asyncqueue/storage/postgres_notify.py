"""Debouncing the NOTIFY that wakes workers: at most one per interval, none owed.

The first enqueue of a quiet spell carries ``pg_notify`` in its own statement (the leading
edge, delivered at its commit). Enqueues within the next ``interval`` go without: they owe
a NOTIFY. The next enqueue after the interval carries it (its notification is delivered
at its commit, after theirs), so a steady producer never sends a NOTIFY of its own. Only
when no enqueue comes for another interval does the owed NOTIFY go out alone: a NOTIFY
transaction takes an XID, so it costs a commit and its WAL flush (measured: lone NOTIFYs
every 5 ms took a fifth of a sequential producer's rate), and it takes a lock that
serialises commits server-wide.

A job committed without a NOTIFY is announced at most two intervals later. A worker busy
with earlier jobs does not wait for it: it claims the next jobs with each completion.
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

Scheduler = Callable[[float, Callable[[], None]], asyncio.TimerHandle]


def _call_later(delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(delay, callback)


class NotifyDebouncer:
    """Decides which enqueue statement carries the NOTIFY, and sends a lone owed one.

    ``clock`` (monotonic seconds) and ``call_later`` are injectable for tests.
    """

    def __init__(
        self,
        send: Callable[[], Awaitable[None]],
        interval: float = NOTIFY_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        call_later: Scheduler = _call_later,
    ) -> None:
        self._send = send
        self._interval = interval
        self._clock = clock
        self._call_later = call_later
        self._quiet_until = float("-inf")
        self._owed = False
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def take_leading_edge(self) -> bool:
        """Whether the statement about to run should carry the NOTIFY itself.

        A statement that carries it also pays what is owed: every statement that owes
        committed before this one started, so this one's notification follows theirs.
        """
        now = self._clock()
        if now < self._quiet_until:
            return False
        self._quiet_until = now + self._interval
        self._owed = False
        return True

    def owe(self) -> None:
        """A statement without NOTIFY committed jobs: make sure a NOTIFY follows."""
        self._owed = True
        if self._timer is None:
            self._schedule()

    def _lone_send_due(self) -> float:
        # The interval, then one more for an enqueue to come and carry it.
        return self._quiet_until + self._interval

    def _schedule(self) -> None:
        delay = max(0.0, self._lone_send_due() - self._clock())
        self._timer = self._call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._owed:
            return
        if self._clock() < self._lone_send_due():
            # A leading edge moved the interval on since this timer was set.
            self._schedule()
            return
        self._owed = False
        self._quiet_until = self._clock() + self._interval
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
