"""Helpers shared by the worker tests: a watchable manual clock and worker subprocesses."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from asyncqueue import Job, JobQueue, JobStatus, ManualClock, QueueWorker
from asyncqueue.storage.sqlite import SQLiteStorage

WORKER_SCRIPT = Path(__file__).with_name("worker_process.py")
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real seconds a test waits for something that should happen at once.
DEADLINE = 10.0


def is_postgres(db: Path | str) -> bool:
    """Whether ``db`` (a ``db_path`` fixture value) is a PostgreSQL URL."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def query(db: Path | str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a raw SQL statement on the test's database, either backend.

    On PostgreSQL the statement runs in the test's schema (``QUEUE_DB_SCHEMA``), its ``?``
    placeholders numbered; keep statements to SQL both databases speak.
    """
    if not is_postgres(db):
        with closing(sqlite3.connect(db)) as conn:
            rows = conn.execute(statement, params).fetchall()
            conn.commit()
            return rows
    import asyncpg

    numbered = iter(range(1, 1000))
    text = re.sub(r"\?", lambda _: f"${next(numbered)}", statement)
    schema = os.environ["QUEUE_DB_SCHEMA"]
    result: list[list[tuple[Any, ...]]] = []

    async def run() -> None:
        conn = await asyncpg.connect(str(db), server_settings={"search_path": schema})
        try:
            result.append([tuple(row) for row in await conn.fetch(text, *params)])
        finally:
            await conn.close()

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    thread.join()
    return result[0]


def db_exists(db: Path | str) -> bool:
    """Whether the test's database exists: the SQLite file, or the PostgreSQL schema."""
    if not is_postgres(db):
        return Path(db).exists()
    schema = os.environ["QUEUE_DB_SCHEMA"]
    return bool(query(db, "SELECT count(*) FROM pg_namespace WHERE nspname = ?", [schema])[0][0])


def sqlite_storage(queue: JobQueue) -> SQLiteStorage:
    """The queue's SQLite backend, for tests that look beneath the public API."""
    storage = queue._storage
    assert isinstance(storage, SQLiteStorage)
    return storage


class WatchedClock(ManualClock):
    """A ManualClock that also lets a test wait until some task sleeps on it.

    ``wait_for_sleeper(s)`` returns once a task is asleep for ``s`` seconds with its deadline
    still ahead: the worker has reached that timer (grace period, poll, heartbeat) and
    advancing the clock will wake it.
    """

    def __init__(self, start: float | None = None) -> None:
        super().__init__(start)
        self._sleeps: list[tuple[float, float]] = []
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        entry = (float(seconds), self.now() + seconds)
        self._sleeps.append(entry)
        self._changed.set()
        try:
            await super().sleep(seconds)
        finally:
            self._sleeps.remove(entry)

    def is_sleeping(self, seconds: float) -> bool:
        return any(s == seconds and end > self.now() for s, end in self._sleeps)

    async def wait_for_sleeper(self, seconds: float) -> None:
        async with asyncio.timeout(DEADLINE):
            while not self.is_sleeping(seconds):
                self._changed.clear()
                await self._changed.wait()


def spawn_worker(db: Path | str, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(tmp_path / "worker_process.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), str(db), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


def process_log(tmp_path: Path) -> str:
    path = tmp_path / "worker_process.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


class Recording(QueueWorker):
    """Completes every job and records the target ids it ran, in order."""

    def __init__(self, queue: JobQueue, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.ran: list[str] = []

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.ran.append(target_id)
        return True


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    timeout: float = DEADLINE,
    *,
    interval: float = 0.005,
    detail: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` real seconds.

    ``detail`` adds context to the failure (e.g. a subprocess's log).
    """
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            pytest.fail(f"timed out waiting for {what}{extra}")
        await asyncio.sleep(interval)


async def job_of(queue: JobQueue, job_id: int) -> Job:
    """The job, which must exist."""
    job = await queue.get_job(job_id)
    assert job is not None
    return job


async def wait_for_status(queue: JobQueue, job_id: int, status: JobStatus) -> Job:
    """Wait until the job reaches ``status``; return it."""

    async def reached() -> bool:
        return (await job_of(queue, job_id)).status is status

    await wait_until(reached, f"job {job_id} to be {status.value}")
    return await job_of(queue, job_id)
