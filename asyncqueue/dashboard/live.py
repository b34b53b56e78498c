"""Live updates: one change signal per dashboard, streamed to browsers as Server-Sent Events.

The signal moves on every transition this process's queue object commits (its event hub)
and on every commit another process makes to the database (the enqueue listener, which
watches the file). A stream sends no data, only a debounced ``changed`` event; the page
then re-fetches its live region (htmx). Pages also poll slowly, in case SSE is blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from asyncqueue.events import JobEvent
from asyncqueue.queue import JobQueue

#: Changes closer together than this are sent as one event (seconds).
DEBOUNCE_SECONDS = 0.25
#: At most one event per stream this often (seconds): a busy queue does not make every
#: open page re-render continuously.
MIN_INTERVAL_SECONDS = 1.0
#: A comment line this often keeps proxies from closing an idle stream (seconds).
KEEPALIVE_SECONDS = 15.0
#: How often a waiting stream checks whether the server is stopping (seconds).
STOP_CHECK_SECONDS = 0.5
#: The browser reconnects this long after a stream ends (milliseconds).
RETRY_MILLISECONDS = 3000


def uvicorn_stopping() -> bool:
    """Whether a uvicorn server in this process was told to stop (SIGINT/SIGTERM).

    uvicorn waits for open responses before it shuts down, and an event stream never ends
    on its own: streams poll this to end promptly. uvicorn installs its ``handle_exit``
    as the signal handler while it serves and sets ``should_exit`` on a signal; anything
    else installed there reads as "not stopping".
    """
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))


class ChangeSignal:
    """A count of the queue's changes seen by this process, that streams wait on.

    It listens to the queue only while at least one stream is open (subscribing makes the
    queue build an event object per transition).

    Args:
        queue: the queue watched.
        stopping: tells whether the server is stopping (default: :func:`uvicorn_stopping`).
    """

    def __init__(self, queue: JobQueue, stopping: Callable[[], bool] = uvicorn_stopping) -> None:
        self._queue = queue
        self._stopping = stopping
        self.seq = 0
        self._changed = asyncio.Event()
        self._users = 0
        self._unsubscribe: Callable[[], None] | None = None
        self.closed = False

    @property
    def stopping(self) -> bool:
        """Whether streams should end now (closed, or the server is stopping)."""
        return self.closed or self._stopping()

    def bump(self) -> None:
        """Record a change and wake every waiter."""
        self.seq += 1
        self._wake()

    def _on_event(self, event: JobEvent) -> None:
        self.bump()

    def _wake(self) -> None:
        # Every waiter holds the event of its moment; a new one serves the next waiters.
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """End every stream now, and every later one at once. Idempotent."""
        self.closed = True
        self._wake()

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Listen to the queue while the context is open (shared by every stream)."""
        if self._users == 0 and self._queue.is_open:
            unsubscribe = self._queue.subscribe(self._on_event)
            self._queue.add_enqueue_listener(self.bump)

            def stop() -> None:
                unsubscribe()
                self._queue.remove_enqueue_listener(self.bump)

            self._unsubscribe = stop
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0 and self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    async def wait(self, since: int, seconds: float) -> int:
        """Wait until the count differs from ``since``, the signal closes, or ``seconds``
        pass, whichever comes first; return the count."""
        deadline = time.monotonic() + seconds
        while self.seq == since and not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, STOP_CHECK_SECONDS))
        return self.seq


async def change_stream(
    signal_: ChangeSignal, disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[str]:
    """The text of one browser's event stream: ``changed`` events, debounced, and
    keep-alive comments, until the browser goes or the server stops.

    Args:
        signal_: the dashboard's change signal.
        disconnected: an async callable telling whether the browser went away.
    """
    with signal_.listening():
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        seen = signal_.seq
        last_sent = 0.0
        while not signal_.stopping:
            current = await signal_.wait(seen, KEEPALIVE_SECONDS)
            if signal_.stopping or await disconnected():
                return
            if current == seen:
                yield ": keep-alive\n\n"
                continue
            # Leading edge delayed a little, so a burst (a batch committed, a worker's
            # exchange) is one event; then at most one event a MIN_INTERVAL_SECONDS.
            pause = max(DEBOUNCE_SECONDS, last_sent + MIN_INTERVAL_SECONDS - time.monotonic())
            await asyncio.sleep(pause)
            seen = signal_.seq
            last_sent = time.monotonic()
            yield f"event: changed\ndata: {seen}\n\n"
