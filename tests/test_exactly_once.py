"""Exactly once under concurrency: 3 workers x concurrency 8 here, plus a worker process.

Real time and a real second OS process on the same SQLite file. Every run is recorded by
whoever ran it (a list here, a file over there); the union must hold every job exactly once.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from support import process_log, spawn_worker, wait_until

from asyncqueue import JobQueue, JobStatus, QueueWorker

N_JOBS = 2000
DEADLINE = 60.0


class Recording(QueueWorker):
    def __init__(self, queue: JobQueue, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.ran: list[str] = []
        self.first = asyncio.Event()

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.ran.append(target_id)
        self.first.set()
        await asyncio.sleep(0)  # let the other jobs of this worker interleave
        return True


async def test_every_job_is_processed_exactly_once_by_four_workers_in_two_processes(
    tmp_path: Path, db_path: Path | str
) -> None:
    db = db_path
    record = tmp_path / "other_process.txt"
    ready, gate = tmp_path / "ready", tmp_path / "gate"
    targets = [f"job-{i:04d}" for i in range(N_JOBS)]

    async with JobQueue(db) as queue:
        ids = await queue.enqueue_many([{"job_type": "work", "target_id": t} for t in targets])
        assert len(set(ids)) == N_JOBS

        proc = spawn_worker(
            db,
            tmp_path,
            "--record",
            str(record),
            "--ready",
            str(ready),
            "--gate",
            str(gate),
            "--worker-id",
            "other-process",
            "--concurrency",
            "8",
            "--poll-interval",
            "0.05",
        )
        workers = [
            Recording(queue, worker_id=f"here-{n}", concurrency=8, poll_interval=0.05)
            for n in range(3)
        ]
        tasks: list[asyncio.Task[None]] = []
        try:

            async def process_ready() -> bool:
                assert proc.poll() is None, process_log(tmp_path)
                return ready.exists()

            # The other process holds jobs of its own before the workers here start, and
            # they all hold some before it may finish any: all four take part.
            await wait_until(
                process_ready,
                "the other process to claim jobs",
                DEADLINE,
                interval=0.02,
                detail=lambda: process_log(tmp_path),
            )
            tasks = [asyncio.create_task(w.start()) for w in workers]

            async def all_started() -> bool:
                return all(w.first.is_set() for w in workers)

            await wait_until(
                all_started,
                "every worker here to run a job",
                DEADLINE,
                interval=0.02,
                detail=lambda: process_log(tmp_path),
            )
            gate.touch()

            async def all_completed() -> bool:
                assert proc.poll() is None, process_log(tmp_path)
                stats = await queue.get_queue_stats()
                return stats.completed_jobs == N_JOBS

            await wait_until(
                all_completed,
                f"{N_JOBS} completed jobs",
                DEADLINE,
                interval=0.02,
                detail=lambda: process_log(tmp_path),
            )
            async with asyncio.timeout(DEADLINE):
                await asyncio.gather(*(w.stop() for w in workers))
                await asyncio.gather(*tasks)

            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, DEADLINE) == 0, process_log(tmp_path)
        finally:
            for task in tasks:
                task.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()

        stats = await queue.get_queue_stats()
        jobs = await queue.list_jobs(limit=N_JOBS + 1)

    other_ran = record.read_text().split()
    ran_by = {w.worker_id: w.ran for w in workers} | {"other-process": other_ran}
    counts = Counter(t for ran in ran_by.values() for t in ran)
    duplicates = {t: n for t, n in counts.items() if n > 1}
    assert duplicates == {}
    assert sorted(counts) == targets
    assert all(ran for ran in ran_by.values()), {k: len(v) for k, v in ran_by.items()}

    assert stats.completed_jobs == stats.total_jobs == N_JOBS
    assert stats.pending_jobs == stats.processing_jobs == stats.failed_jobs == 0
    assert stats.retry_scheduled_jobs == 0
    # Each job was claimed once, and the database credits the worker that recorded it.
    assert len(jobs) == N_JOBS
    runner_of = {t: worker_id for worker_id, ran in ran_by.items() for t in ran}
    for job in jobs:
        assert job.status is JobStatus.COMPLETED
        assert (job.attempts, job.retry_count) == (1, 0), job
        assert job.worker_id == runner_of[job.target_id]


async def test_four_worker_processes_of_concurrency_32_run_each_job_exactly_once(
    tmp_path: Path, db_path: Path | str
) -> None:
    """4 processes x concurrency 32 on one database, started before the jobs arrive."""
    targets = [f"job-{i:04d}" for i in range(N_JOBS)]
    records = [tmp_path / f"process-{n}.txt" for n in range(4)]
    async with JobQueue(db_path) as queue:
        await queue.open()
        procs = [
            spawn_worker(
                db_path,
                tmp_path,
                "--record",
                str(record),
                "--worker-id",
                f"process-{n}",
                "--concurrency",
                "32",
                "--poll-interval",
                "0.05",
            )
            for n, record in enumerate(records)
        ]
        try:

            async def registered() -> bool:
                assert all(p.poll() is None for p in procs), process_log(tmp_path)
                return (await queue.get_queue_stats()).active_workers == len(procs)

            await wait_until(registered, "the workers to start", DEADLINE, interval=0.05)
            for start in range(0, N_JOBS, 250):
                await queue.enqueue_many(
                    [{"job_type": "work", "target_id": t} for t in targets[start : start + 250]]
                )

            async def all_completed() -> bool:
                assert all(p.poll() is None for p in procs), process_log(tmp_path)
                return (await queue.get_queue_stats()).completed_jobs == N_JOBS

            await wait_until(
                all_completed,
                f"{N_JOBS} completed jobs",
                DEADLINE,
                interval=0.05,
                detail=lambda: process_log(tmp_path),
            )
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                assert await asyncio.to_thread(proc.wait, DEADLINE) == 0, process_log(tmp_path)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        stats = await queue.get_queue_stats()

    ran = [t for record in records for t in record.read_text().split()]
    counts = Counter(ran)
    assert {t: n for t, n in counts.items() if n > 1} == {}
    assert sorted(counts) == targets
    assert stats.completed_jobs == N_JOBS
    assert stats.processing_jobs == stats.pending_jobs == 0
    assert sum(1 for record in records if record.read_text()) >= 2, "the work was shared"
