"""Noticing other processes' commits to a SQLite file without running a query.

Workers must learn that another process enqueued a job. Polling with claim queries costs a
write transaction each time; instead the watcher observes the WAL file, which every commit
appends to. On Linux it uses inotify (through libc, no dependency): the kernel wakes us on
each write, so an idle worker costs nothing. Elsewhere it falls back to ``os.stat`` of the
WAL every few milliseconds, which costs no database lock.

A notification only means "something may have changed": the worker then tries a claim.
The storage drops the ones it can tell were its own writer's commits (see
``SQLiteStorage.watch_changes``); one it cannot tell costs a claim that finds nothing and,
writing nothing, notifies no one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

#: Seconds between ``os.stat`` checks where inotify is unavailable.
FALLBACK_POLL_INTERVAL = 0.005

_IN_MODIFY = 0x00000002
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = 0o2000000


class ChangeWatcher:
    """Calls ``callback()`` soon after the WAL file of ``db_path`` is written."""

    def __init__(self, db_path: str, callback: Callable[[], None]) -> None:
        self._wal_path = db_path + "-wal"
        self._callback = callback
        self._fd: int | None = None
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching in the running event loop."""
        loop = asyncio.get_running_loop()
        fd = _inotify_watch(self._wal_path)
        if fd is not None:
            self._fd = fd
            loop.add_reader(fd, self._drain)
        else:
            self._poller = loop.create_task(self._poll(), name="asyncqueue-change-poll")

    def close(self) -> None:
        """Stop watching."""
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def _drain(self) -> None:
        assert self._fd is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._fd, 4096):
                pass
        self._callback()

    async def _poll(self) -> None:
        last = _signature(self._wal_path)
        while True:
            await asyncio.sleep(FALLBACK_POLL_INTERVAL)
            current = _signature(self._wal_path)
            if current != last:
                last = current
                self._callback()


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _inotify_watch(path: str) -> int | None:
    """An inotify descriptor watching ``path`` for writes, or None where unsupported."""
    if not sys.platform.startswith("linux") or os.environ.get("ASYNCQUEUE_NO_INOTIFY"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY) < 0:
            os.close(fd)
            return None
    except (OSError, AttributeError):
        return None
    return int(fd)
