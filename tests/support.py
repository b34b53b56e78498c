"""Helpers shared by the worker tests: a watchable manual clock and worker subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from asyncqueue import Job, JobQueue, JobStatus, ManualClock, QueueWorker
from asyncqueue.storage.sqlite import SQLiteStorage

WORKER_SCRIPT = Path(__file__).with_name("worker_process.py")
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real seconds a test waits for something that should happen at once.
DEADLINE = 10.0


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


def spawn_worker(db: Path, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
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
