"""Crash recovery: a worker process killed with SIGKILL mid-job; another worker finishes it.

Real time with a short lease (``job_timeout_minutes=0.03``: 1.8 s). The doomed process runs
ten quick jobs, then two jobs that block; once both have started it is killed. A worker here
then recovers the two after their lease runs out and completes them, and runs the rest.
Every job completes exactly once and the dead worker's row is pruned.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

from support import Recording, process_log, query, spawn_worker, wait_until

from asyncqueue import JobQueue, JobStatus, ManualClock

TIMEOUT_MINUTES = 0.03
DEADLINE = 30.0


def worker_ids(db: Path | str) -> set[str]:
    return {row[0] for row in query(db, "SELECT id FROM workers")}


async def test_a_job_of_a_killed_worker_is_recovered_and_completed_exactly_once(
    tmp_path: Path, db_path: Path | str
) -> None:
    db = db_path
    record = tmp_path / "doomed.txt"
    markers = tmp_path / "markers"
    markers.mkdir()

    async with JobQueue(db, job_timeout_minutes=TIMEOUT_MINUTES) as queue:
        # Priorities fix the doomed worker's order: the quick jobs, then the blockers, which
        # fill both its slots, so it never runs the late jobs.
        early = [f"early-{i}" for i in range(10)]
        blockers = ["block-0", "block-1"]
        late = [f"late-{i}" for i in range(20)]
        await queue.enqueue_many(
            [{"job_type": "work", "target_id": t, "priority": 1} for t in early]
            + [{"job_type": "block", "target_id": t, "priority": 2} for t in blockers]
            + [{"job_type": "work", "target_id": t, "priority": 3} for t in late]
        )
        ids = {job.target_id: job.id for job in await queue.list_jobs(limit=100)}

        proc = spawn_worker(
            db,
            tmp_path,
            "--record",
            str(record),
            "--markers",
            str(markers),
            "--worker-id",
            "doomed",
            "--concurrency",
            "2",
            "--poll-interval",
            "0.05",
            "--job-timeout-minutes",
            str(TIMEOUT_MINUTES),
        )
        try:

            async def blockers_started() -> bool:
                assert proc.poll() is None, process_log(tmp_path)
                if not all((markers / f"{t}.started").exists() for t in blockers):
                    return False
                # A worker records outcomes in batches: wait until the quick jobs' completions
                # are committed, so that the jobs it dies with are exactly the two blockers.
                done = [await queue.get_job(ids[t]) for t in early]
                return all(job is not None and job.status is JobStatus.COMPLETED for job in done)

            await wait_until(
                blockers_started,
                "both blockers to start and the quick jobs' completions to be committed",
                DEADLINE,
                interval=0.02,
                detail=lambda: process_log(tmp_path),
            )
            os.kill(proc.pid, signal.SIGKILL)
            assert await asyncio.to_thread(proc.wait, DEADLINE) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

        # Killed mid-job: its two jobs are still marked as running under its name.
        for target in blockers:
            job = await queue.get_job(ids[target])
            assert job is not None
            assert (job.status, job.worker_id) == (JobStatus.PROCESSING, "doomed")
        assert "doomed" in worker_ids(db)

        rescuer = Recording(queue, worker_id="rescuer", concurrency=4, poll_interval=0.05)
        task = asyncio.create_task(rescuer.start())
        try:

            async def all_completed() -> bool:
                stats = await queue.get_queue_stats()
                return stats.completed_jobs == len(ids)

            await wait_until(
                all_completed,
                "every job to complete",
                DEADLINE,
                interval=0.02,
                detail=lambda: process_log(tmp_path),
            )

            async def dead_worker_pruned() -> bool:
                return worker_ids(db) == {"rescuer"}

            await wait_until(
                dead_worker_pruned,
                "the dead worker's row to be pruned",
                DEADLINE,
                interval=0.02,
                detail=lambda: process_log(tmp_path),
            )
            assert (await queue.get_queue_stats()).active_workers == 1
        finally:
            async with asyncio.timeout(DEADLINE):
                await rescuer.stop()
                await task

        stats = await queue.get_queue_stats()
        jobs = {job.target_id: job for job in await queue.list_jobs(limit=100)}

    doomed_ran = record.read_text().split()
    assert sorted(doomed_ran) == sorted(early)  # it finished exactly these before dying
    counts = Counter(doomed_ran + rescuer.ran)
    assert {t: n for t, n in counts.items() if n > 1} == {}
    assert sorted(counts) == sorted(ids)
    assert sorted(rescuer.ran) == sorted(blockers + late)

    assert stats.completed_jobs == stats.total_jobs == len(ids) == 32
    assert stats.pending_jobs == stats.processing_jobs == stats.failed_jobs == 0
    for target, job in jobs.items():
        assert job.status is JobStatus.COMPLETED
        if target in blockers:  # one attempt lost with the crash, counted; one completed
            assert (job.worker_id, job.attempts, job.retry_count) == ("rescuer", 2, 1)
        elif target in early:
            assert (job.worker_id, job.attempts, job.retry_count) == ("doomed", 1, 0)
        else:
            # Never started by the doomed worker; it may have claimed a few ahead (its jobs
            # were quick), and a claim that dies with its worker counts as an attempt.
            assert job.worker_id == "rescuer"
            assert (job.attempts, job.retry_count) in {(1, 0), (2, 1)}


async def test_a_frozen_workers_late_result_is_refused(tmp_path: Path, db_path: Path | str) -> None:
    """A worker process frozen mid-job (SIGSTOP) loses its lease; another worker takes the job
    back and completes it. Thawed (SIGCONT), the frozen one finishes its run, and its result
    is refused by the lease token: the job stays completed once, by the rescuer."""
    db = db_path
    record, ready, gate = tmp_path / "frozen.txt", tmp_path / "ready", tmp_path / "gate"
    async with JobQueue(db) as queue:
        job_id = await queue.enqueue("work", "held")
        proc = spawn_worker(
            db,
            tmp_path,
            *("--record", str(record), "--ready", str(ready), "--gate", str(gate)),
            *("--worker-id", "frozen", "--concurrency", "1"),
        )
        try:

            async def started() -> bool:
                assert proc.poll() is None, process_log(tmp_path)
                return ready.exists()

            await wait_until(started, "the job to start", DEADLINE, interval=0.02)
            os.kill(proc.pid, signal.SIGSTOP)
            job = await queue.get_job(job_id)
            assert job is not None
            assert (job.status, job.worker_id) == (JobStatus.PROCESSING, "frozen")

            # Past its 30-minute lease on a clock of our own: the job is taken back and run.
            later = ManualClock(start=time.time() + 3600)
            async with JobQueue(db, clock=later) as rescuing:
                assert await rescuing.recover_stale_jobs() == 1
                rescuer = Recording(rescuing, worker_id="rescuer")
                assert await rescuer.run_until_idle() == 1
            assert rescuer.ran == ["held"]

            gate.touch()
            os.kill(proc.pid, signal.SIGCONT)

            async def ran_late() -> bool:
                return record.exists() and record.read_text().split() == ["held"]

            await wait_until(ran_late, "the thawed worker to finish its run", DEADLINE)
            proc.send_signal(signal.SIGTERM)  # a graceful stop: its outcome is sent first
            assert await asyncio.to_thread(proc.wait, DEADLINE) == 0, process_log(tmp_path)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait()

        job = await queue.get_job(job_id)
        assert job is not None
        assert (job.status, job.worker_id, job.attempts) == (JobStatus.COMPLETED, "rescuer", 2)
        events = [(e.event, e.worker_id) for e in await queue.get_job_history(job_id)]
        assert events.count(("completed", "rescuer")) == 1
        assert not any(worker == "frozen" and event == "completed" for event, worker in events)
    assert "lease" in process_log(tmp_path), "the thawed worker says it lost the lease"
