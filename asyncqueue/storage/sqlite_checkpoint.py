"""WAL checkpoints off the writer's path.

With SQLite's automatic checkpoint, every thousandth commit of the writer stops to copy the
WAL back into the database file. The writer connection runs with ``wal_autocheckpoint = 0``
instead, and this checkpointer, on a connection (and thread) of its own, runs a PASSIVE
checkpoint after every so many commits: it never blocks the writer or readers, and the
WAL stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import aiosqlite

from asyncqueue.storage.sqlite_connection import run_in_thread

#: Commits of this process between two checkpoints.
COMMITS_PER_CHECKPOINT = 200


class Checkpointer:
    """Counts the writer's commits and checkpoints in the background every so often."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._commits = 0
        self._running: asyncio.Task[None] | None = None

    def committed(self) -> None:
        """Called by the writer after each commit."""
        self._commits += 1
        if self._commits >= COMMITS_PER_CHECKPOINT and self._running is None:
            self._commits = 0
            self._running = asyncio.get_running_loop().create_task(
                self._checkpoint(), name="asyncqueue-checkpoint"
            )

    async def _checkpoint(self) -> None:
        try:
            # Best effort: a checkpoint that cannot run now runs next time.
            with contextlib.suppress(sqlite3.Error):
                await run_in_thread(self._conn, _passive_checkpoint)
        finally:
            self._running = None

    async def close(self) -> None:
        """Finish a running checkpoint, run a last one, and close the connection."""
        if self._running is not None:
            await self._running
        with contextlib.suppress(sqlite3.Error):
            await run_in_thread(self._conn, _passive_checkpoint)
        await self._conn.close()


def _passive_checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
