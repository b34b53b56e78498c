"""asyncqueue quick start: a few hundred jobs, two workers, retries, failures, statistics.

Run it with::

    python examples/quickstart.py [DATABASE_FILE]

The database is the first argument, else ``QUEUE_DB_PATH``, else ``./asyncqueue-demo.db``.
It is deleted first so every run starts clean; the demo refuses to delete a file that
holds jobs other than its own.

What happens:

- 300 jobs of four types and priorities 1-10 are enqueued in one transaction
  (``enqueue_many``); a repeated target shows duplicate prevention.
- Two workers in this process share the queue: one runs 8 jobs at once, the other 3.
- About one job in twenty fails its first attempt (a simulated timeout) and succeeds on
  its retry, after a short exponential backoff.
- A few jobs can never succeed; after their retries they end as ``failed``, and the demo
  prints their ``error_message``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import sys
import time
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import structlog

from asyncqueue import JobQueue, QueueStats, QueueWorker

DEFAULT_PATH = "./asyncqueue-demo.db"
JOB_COUNT = 300
BROKEN_TARGETS = ("episode-013", "episode-113", "episode-213")
TIME_LIMIT = 15.0  # seconds; the demo normally drains in two or three


class JobType(StrEnum):
    """The app's own job types; the queue stores their string values."""

    DOWNLOAD_TRANSCRIPT = "download_transcript"
    TRANSCRIBE_AUDIO = "transcribe_audio"
    GENERATE_CONTENT = "generate_content"
    SYNC_STORAGE = "sync_storage"


class TransientError(Exception):
    """A failure worth retrying, like a network timeout."""


class DemoWorker(QueueWorker):
    """Simulates work: a short sleep, a flaky first attempt now and then, a few lost causes."""

    # Shared by both workers: how often each job has been attempted in this process.
    attempts: ClassVar[Counter[tuple[str, str]]] = Counter()

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        key = (job_type, target_id)
        DemoWorker.attempts[key] += 1
        await asyncio.sleep(metadata["work_seconds"])
        if metadata.get("broken"):
            raise ValueError(f"{target_id}: source file is corrupt")
        if metadata.get("flaky") and DemoWorker.attempts[key] == 1:
            raise TransientError(f"{target_id}: upstream timed out")
        return True


def database_path() -> Path:
    """The file named on the command line, else QUEUE_DB_PATH, else the demo default."""
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    return Path(os.environ.get("QUEUE_DB_PATH") or DEFAULT_PATH)


def remove_previous_run(path: Path) -> None:
    """Delete the demo database and its WAL files, but never someone else's queue."""
    if path.exists() and path.stat().st_size > 0:
        ours = {t.value for t in JobType}
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                found = {row[0] for row in conn.execute("SELECT DISTINCT job_type FROM jobs")}
        except sqlite3.Error:
            found = {"<not a demo database>"}
        if not found <= ours:
            sys.exit(f"refusing to delete {path}: it holds jobs that are not the demo's")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def configure_logging() -> None:
    """Warnings and errors only, one line each on stderr, so the demo's own output stays readable.

    A failed attempt is logged as a warning with its traceback; here the traceback is cut
    down to its last line, because every failure in this demo is intended.
    """

    def one_line_exception(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.pop("exc_info", None) and (exc := sys.exception()) is not None:
            event["error"] = f"{type(exc).__name__}: {exc}"
        return event

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        processors=[
            structlog.processors.add_log_level,
            one_line_exception,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def make_jobs(rng: random.Random) -> list[dict[str, Any]]:
    """The items for ``enqueue_many``: several types, every priority, some flaky, a few broken."""
    types = list(JobType)
    items: list[dict[str, Any]] = []
    for n in range(JOB_COUNT):
        target = f"episode-{n:03d}"
        broken = target in BROKEN_TARGETS
        items.append(
            {
                "job_type": types[n % len(types)],
                "target_id": target,
                "priority": rng.randint(1, 10),
                # A lost cause gets one retry; everything else the queue's default (2).
                "max_retries": 1 if broken else None,
                "metadata": {
                    "work_seconds": rng.uniform(0.02, 0.08),
                    "flaky": rng.random() < 1 / 20,
                    "broken": broken,
                },
            }
        )
    # The same (job_type, target_id) again while the first is still pending: not inserted.
    items.append(dict(items[0], priority=1))
    return items


def progress_line(elapsed: float, stats: QueueStats) -> str:
    return (
        f"{elapsed:5.2f}s  pending={stats.pending_jobs:<3} processing={stats.processing_jobs:<2} "
        f"retry_scheduled={stats.retry_scheduled_jobs:<2} completed={stats.completed_jobs:<3} "
        f"failed={stats.failed_jobs} workers={stats.active_workers}"
    )


async def wait_until_drained(queue: JobQueue, started: float) -> QueueStats:
    """Print progress until nothing is pending, running or waiting for a retry."""
    while True:
        stats = await queue.get_queue_stats()
        elapsed = time.monotonic() - started
        print(progress_line(elapsed, stats))
        if stats.pending_jobs + stats.processing_jobs + stats.retry_scheduled_jobs == 0:
            return stats
        if elapsed > TIME_LIMIT:
            sys.exit(f"the queue did not drain within {TIME_LIMIT:g} s")
        await asyncio.sleep(0.25)


async def main() -> None:
    configure_logging()
    path = database_path()
    remove_previous_run(path)
    print(f"asyncqueue demo: database {path}")
    print("(asyncqueue logs each failed attempt as a warning on stderr; they are intended here)")

    async with JobQueue(
        path, retry_base_delay=0.05, retry_backoff_multiplier=2.0, max_retries=2
    ) as queue:
        ids = await queue.enqueue_many(make_jobs(random.Random(7)))
        created = sum(job_id.created for job_id in ids)
        print(
            f"enqueued {created} jobs ({len(ids) - created} duplicate refused: same id {ids[-1]})"
        )

        # poll_interval bounds how soon a retry whose backoff has passed is picked up.
        workers = [
            DemoWorker(queue, worker_id="fast", concurrency=8, poll_interval=0.05),
            DemoWorker(queue, worker_id="slow", concurrency=3, poll_interval=0.05),
        ]
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for worker in workers:
                group.create_task(worker.start())
            await wait_until_drained(queue, started)
            for worker in workers:
                await worker.stop()
        elapsed = time.monotonic() - started

        stats = await queue.get_queue_stats()
        print(f"\ndrained in {elapsed:.1f} s")
        for worker in workers:
            print(
                f"  worker {worker.worker_id} (concurrency {worker.concurrency}): "
                f"{worker.jobs_processed} completed, {worker.jobs_failed} failed attempts"
            )
        print("final stats:")
        for name, value in stats.to_dict().items():
            print(f"  {name:<20} {value}")
        completed = await queue.list_jobs(status="completed", limit=JOB_COUNT)
        retried = [job for job in completed if job.attempts > 1]
        print(f"completed after a retry: {len(retried)} jobs")

        print("failed jobs:")
        for job in await queue.get_failed_jobs():
            print(
                f"  #{job.id} {job.job_type} {job.target_id} after {job.attempts} attempts: "
                f"{job.error_message}"
            )


if __name__ == "__main__":
    asyncio.run(main())
