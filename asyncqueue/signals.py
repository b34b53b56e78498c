"""Opt-in signal handling: stop a worker on SIGINT/SIGTERM.

``QueueWorker`` never installs signal handlers, so it runs the same in a script, a FastAPI
lifespan or a test. A program that owns its process (the ``asyncqueue worker`` command, a
worker script under systemd) asks for them around the run::

    async with stop_on_signals(worker):
        await worker.start()

The first signal stops the worker gracefully (running jobs get the grace period); the
second stops it at once, returning running jobs to pending. The handlers are removed when
the block exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from types import FrameType
from typing import Any, Protocol

_Handler = Callable[[int, FrameType | None], Any] | int | None

#: The signals that stop a worker: Ctrl-C, and what process managers send (systemd, Docker,
#: Kubernetes).
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


class Stoppable(Protocol):
    """Anything stopped like a ``QueueWorker``."""

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop, giving running work ``grace_period`` seconds (None: the default)."""
        ...


@contextlib.contextmanager
def on_signals(
    callback: Callable[[signal.Signals], None], signals: Sequence[signal.Signals] = STOP_SIGNALS
) -> Iterator[None]:
    """Call ``callback(signal)`` in the running event loop for each signal received inside.

    Uses ``loop.add_signal_handler`` where the platform has it, else ``signal.signal``
    handing over to the loop. The previous handlers are back when the block exits.

    Raises:
        RuntimeError: no event loop is running.
        ValueError: not called from the main thread (only it may handle signals).
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    previous: dict[signal.Signals, _Handler] = {}

    def fallback(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback, signal.Signals(signum))

    try:
        for sig in signals:
            try:
                loop.add_signal_handler(sig, callback, sig)
                installed.append(sig)
            except NotImplementedError:  # Windows' event loops have no add_signal_handler
                previous[sig] = signal.signal(sig, fallback)
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.asynccontextmanager
async def stop_on_signals(
    worker: Stoppable,
    *,
    signals: Sequence[signal.Signals] = STOP_SIGNALS,
    on_signal: Callable[[signal.Signals, int], None] | None = None,
) -> AsyncIterator[None]:
    """Stop ``worker`` when one of ``signals`` arrives inside the block.

    The first signal calls ``worker.stop()`` (graceful: running jobs get the worker's grace
    period); the second calls ``worker.stop(grace_period=0)``, so jobs still running are
    cancelled and returned to pending. Later signals are ignored. On exit the block waits
    for the stop calls it started.

    Args:
        worker: a ``QueueWorker``, or anything with the same ``stop``.
        signals: the signals to handle (default SIGINT and SIGTERM).
        on_signal: called with the signal and how many have arrived (1, 2, ...) before
            the worker is told, for example to tell the operator what happens next.
    """
    stopping: list[asyncio.Task[None]] = []
    received = 0

    def handle(sig: signal.Signals) -> None:
        nonlocal received
        received += 1
        if on_signal is not None:
            on_signal(sig, received)
        if received > 2:
            return
        grace = None if received == 1 else 0.0
        stopping.append(
            asyncio.get_running_loop().create_task(
                worker.stop(grace_period=grace), name=f"asyncqueue-stop-on-{sig.name}"
            )
        )

    with on_signals(handle, signals):
        try:
            yield
        finally:
            if stopping:
                await asyncio.gather(*stopping)
