"""Duplicate prevention on (job_type, target_id): by status, under coroutines and processes."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from support import query

import asyncqueue
from asyncqueue import JobId, JobQueue, JobStatus, ManualClock, QueueWorker

PROJECT_ROOT = Path(asyncqueue.__file__).resolve().parent.parent


def count(path: Path | str, where: str = "1 = 1") -> int:
    rows: int = query(path, f"SELECT count(*) FROM jobs WHERE {where}")[0][0]
    return rows


ACTIVE = "status IN ('pending', 'retry_scheduled', 'processing')"


class Scripted(QueueWorker):
    """Runs ``on_job`` for each job; returns what it returns."""

    def __init__(
        self, queue: JobQueue, on_job: Callable[[str, str], Awaitable[bool]], **kwargs: Any
    ) -> None:
        super().__init__(queue, **kwargs)
        self.on_job = on_job

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        return await self.on_job(job_type, target_id)


async def succeed(job_type: str, target_id: str) -> bool:
    return True


async def fail(job_type: str, target_id: str) -> bool:
    return False


async def status_of(queue: JobQueue, job_id: int) -> JobStatus:
    job = await queue.get_job(job_id)
    assert job is not None
    return job.status


# -- by status ------------------------------------------------------------------------


async def test_duplicate_of_a_pending_job_returns_its_id(queue: JobQueue, db_path: Path) -> None:
    first = await queue.enqueue("email", "u1", priority=5, metadata={"v": 1})

    second = await queue.enqueue("email", "u1", priority=1, metadata={"v": 2}, max_retries=9)

    assert second == first
    assert first.created
    assert not second.created
    assert isinstance(second, JobId)
    job = await queue.get_job(first)
    assert job is not None
    assert (job.priority, job.metadata, job.max_retries) == (5, {"v": 1}, 3)
    assert count(db_path) == 1


async def test_a_delayed_pending_job_also_blocks_duplicates(queue: JobQueue, db_path: Path) -> None:
    first = await queue.enqueue("email", "u1", delay=3600)

    second = await queue.enqueue("email", "u1")

    assert second == first
    assert not second.created
    assert count(db_path) == 1


async def test_duplicate_of_a_retry_scheduled_job_returns_its_id(
    queue: JobQueue, db_path: Path
) -> None:
    first = await queue.enqueue("email", "u1", max_retries=3)
    await Scripted(queue, fail).run_until_idle()
    assert await status_of(queue, first) is JobStatus.RETRY_SCHEDULED

    second = await queue.enqueue("email", "u1")

    assert second == first
    assert not second.created
    assert await status_of(queue, first) is JobStatus.RETRY_SCHEDULED
    assert count(db_path) == 1


async def test_duplicate_of_a_processing_job_returns_its_id(queue: JobQueue, db_path: Path) -> None:
    first = await queue.enqueue("email", "u1")
    seen: list[tuple[JobId, JobStatus]] = []

    async def enqueue_again(job_type: str, target_id: str) -> bool:
        again = await queue.enqueue(job_type, target_id)
        seen.append((again, await status_of(queue, first)))
        return True

    await Scripted(queue, enqueue_again).run_until_idle()

    assert seen == [(first, JobStatus.PROCESSING)]
    assert not seen[0][0].created
    assert await status_of(queue, first) is JobStatus.COMPLETED
    assert count(db_path) == 1


async def test_a_new_job_may_follow_a_completed_one(queue: JobQueue, db_path: Path) -> None:
    first = await queue.enqueue("email", "u1")
    await Scripted(queue, succeed).run_until_idle()
    assert await status_of(queue, first) is JobStatus.COMPLETED

    second = await queue.enqueue("email", "u1")

    assert second.created
    assert second != first
    assert await status_of(queue, second) is JobStatus.PENDING
    assert count(db_path) == 2


async def test_a_new_job_may_follow_a_failed_one(queue: JobQueue, db_path: Path) -> None:
    first = await queue.enqueue("email", "u1", max_retries=0)
    await Scripted(queue, fail).run_until_idle()
    assert await status_of(queue, first) is JobStatus.FAILED

    second = await queue.enqueue("email", "u1")

    assert second.created
    assert second != first
    assert count(db_path) == 2


async def test_a_new_job_may_follow_a_cancelled_one(queue: JobQueue, db_path: Path) -> None:
    first = await queue.enqueue("email", "u1")
    assert await queue.cancel_job(first)

    second = await queue.enqueue("email", "u1")

    assert second.created
    assert second != first
    third = await queue.enqueue("email", "u1")
    assert third == second
    assert not third.created
    assert count(db_path) == 2
    assert count(db_path, ACTIVE) == 1


async def test_only_the_pair_counts(queue: JobQueue, db_path: Path) -> None:
    ids = [
        await queue.enqueue("email", "u1"),
        await queue.enqueue("email", "u2"),
        await queue.enqueue("sms", "u1"),
        await queue.enqueue("Email", "u1"),
        await queue.enqueue("email", "u1 "),
    ]

    assert all(i.created for i in ids)
    assert len(set(ids)) == 5
    assert count(db_path) == 5


# -- concurrency ----------------------------------------------------------------------


async def test_fifty_concurrent_coroutines_make_exactly_one_job(
    queue: JobQueue, db_path: Path
) -> None:
    ids = await asyncio.gather(*(queue.enqueue("sync", "account-7") for _ in range(50)))

    assert len(set(ids)) == 1
    assert sum(i.created for i in ids) == 1
    assert count(db_path) == 1
    assert (await queue.get_queue_stats()).total_jobs == 1


async def test_fifty_concurrent_coroutines_on_a_never_opened_queue(
    db_path: Path, clock: ManualClock
) -> None:
    queue = JobQueue(db_path, clock=clock)
    try:
        ids = await asyncio.gather(*(queue.enqueue("sync", "account-7") for _ in range(50)))
    finally:
        await queue.close()

    assert len(set(ids)) == 1
    assert sum(i.created for i in ids) == 1
    assert count(db_path) == 1


async def test_concurrent_batches_and_single_enqueues_share_one_job_per_pair(
    queue: JobQueue, db_path: Path
) -> None:
    items = [{"job_type": "sync", "target_id": str(t)} for t in range(10)]
    calls: list[Awaitable[Any]] = []
    for _ in range(10):
        calls.append(queue.enqueue_many(items))
        calls.extend(queue.enqueue("sync", str(t)) for t in range(10))

    results = await asyncio.gather(*calls)

    by_target: dict[str, set[int]] = {}
    created = 0
    for result in results:
        ids = result if isinstance(result, list) else [result]
        targets = [str(t) for t in range(10)] if isinstance(result, list) else [None]
        for job_id, target in zip(ids, targets, strict=True):
            job = await queue.get_job(job_id)
            assert job is not None
            assert target is None or job.target_id == target
            by_target.setdefault(job.target_id, set()).add(int(job_id))
            created += job_id.created
    assert created == 10
    assert all(len(ids) == 1 for ids in by_target.values())
    assert count(db_path) == 10


ENQUEUER = """
import asyncio, json, sys
from asyncqueue import JobQueue

async def main(path, targets, rounds, fan_out):
    async with JobQueue(path, busy_timeout=10) as queue:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        results = [[] for _ in range(targets)]
        for target in range(targets):
            for _ in range(rounds):
                ids = await asyncio.gather(
                    *(queue.enqueue("sync", f"target-{target}") for _ in range(fan_out))
                )
                results[target].extend([int(i), i.created] for i in ids)
    print(json.dumps(results), flush=True)

asyncio.run(main(sys.argv[1], *map(int, sys.argv[2:])))
"""

Results = list[list[list[Any]]]  # per target: [job id, created] per call


async def enqueue_here(queue: JobQueue, targets: int, rounds: int, fan_out: int) -> Results:
    results: Results = [[] for _ in range(targets)]
    for target in range(targets):
        for _ in range(rounds):
            ids = await asyncio.gather(
                *(queue.enqueue("sync", f"target-{target}") for _ in range(fan_out))
            )
            results[target].extend([int(i), i.created] for i in ids)
    return results


@pytest.mark.parametrize(
    ("targets", "rounds", "fan_out"),
    [pytest.param(1, 150, 4, id="one-pair-many-times"), pytest.param(120, 1, 4, id="many-pairs")],
)
async def test_three_processes_enqueueing_the_same_pair_make_exactly_one_row(
    db_path: Path, targets: int, rounds: int, fan_out: int
) -> None:
    async with JobQueue(db_path, busy_timeout=10) as queue:
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                ENQUEUER,
                str(db_path),
                str(targets),
                str(rounds),
                str(fan_out),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=PROJECT_ROOT,
            )
            for _ in range(2)
        ]
        for process in processes:
            assert process.stdout is not None
            assert (await process.stdout.readline()).strip() == b"ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()

        here = await enqueue_here(queue, targets, rounds, fan_out)
        outputs = [await process.communicate() for process in processes]

    assert [process.returncode for process in processes] == [0, 0]
    everyone: list[Results] = [here] + [json.loads(out) for out, _ in outputs]
    for target in range(targets):
        seen = [call for results in everyone for call in results[target]]
        assert len(seen) == 3 * rounds * fan_out
        assert len({job_id for job_id, _ in seen}) == 1, f"target-{target}: {seen}"
        assert sum(created for _, created in seen) == 1, f"target-{target}: {seen}"
    assert count(db_path) == targets
    assert count(db_path, ACTIVE) == targets
    per_pair = query(
        db_path,
        "SELECT max(n) FROM (SELECT count(*) AS n FROM jobs GROUP BY job_type, target_id) c",
    )[0][0]
    assert per_pair == 1
