"""Latency phases: enqueue one job every 10 ms into an idle worker; time until it starts.

Latency = the job's start time (logged by the worker) minus ``time.time()`` taken just
before the ``enqueue()`` call, so it includes the enqueue itself (as in the peer bench).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

from asyncqueue import JobQueue
from asyncqueue.bench.checks import check_delivery, check_drained
from asyncqueue.bench.config import DbLocation
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.joblog import JobLogReader, JobLogWriter
from asyncqueue.bench.procs import any_exited, stop_workers, wait_for_jobs
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.workload import enqueue_one


async def latency_same_process_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """The worker runs in this process and event loop, on the same ``JobQueue`` object."""
    db = ctx.database()
    log, reader = ctx.job_log()
    joblog = JobLogWriter(log)
    try:
        async with ctx.queue(db) as queue:
            worker = ctx.recording_worker(queue, joblog)
            running = asyncio.create_task(worker.start())
            try:
                await measure_latency(ctx, result, queue, reader, gave_up=running.done)
            finally:
                await worker.stop()
                await running
    finally:
        joblog.close()
    reader.poll()
    await _verify(ctx, result, db, reader)


async def latency_cross_process_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """The worker runs in another process on the same file (the peer bench's latency phase)."""
    await latency_in_another_process(ctx, result, ctx.database())


async def latency_in_another_process(
    ctx: PhaseContext, result: PhaseResult, db: DbLocation, url: str | None = None
) -> None:
    """One idle worker process on ``db`` (remote, through the API at ``url``, if given);
    jobs enqueued into ``db`` from here, one per 10 ms."""
    log, reader = ctx.job_log()
    async with ctx.queue(db) as queue:
        worker = await ctx.spawn(db, log, "-w0", url)
        try:
            await measure_latency(ctx, result, queue, reader, gave_up=any_exited([worker]))
        finally:
            problems = await stop_workers([worker])
    reader.poll()
    result.check("clean_stop", not problems, "; ".join(problems))
    await _verify(ctx, result, db, reader)


async def measure_latency(
    ctx: PhaseContext,
    result: PhaseResult,
    queue: JobQueue,
    reader: JobLogReader,
    gave_up: Callable[[], bool],
) -> None:
    """Enqueue a warm-up job, then ``latency_jobs`` paced ones; record start latencies."""
    config = ctx.config
    count, warm_up = config.latency_jobs, config.latency_jobs
    await enqueue_one(queue, warm_up)
    ready = await wait_for_jobs(
        reader,
        lambda: warm_up in reader.first_start,
        stall_timeout=config.stall_timeout,
        gave_up=gave_up,
    )
    if not ready:
        result.check("finished", False, "the warm-up job never ran")
        return
    await asyncio.sleep(config.latency_idle)
    enqueued_at = await _enqueue_paced(queue, count, config.latency_interval)
    finished = await wait_for_jobs(
        reader,
        lambda: len(reader.first_start) > count,
        stall_timeout=config.stall_timeout,
        gave_up=gave_up,
    )
    result.check("finished", finished, "" if finished else "not every job ran")
    latencies = [
        (reader.first_start[job] - at) * 1000
        for job, at in enqueued_at.items()
        if job in reader.first_start
    ]
    if latencies:
        result.add("p50_ms", "p50 ms", percentile(latencies, 50), 2)
        result.add("p99_ms", "p99 ms", percentile(latencies, 99), 2)
        result.add("max_ms", "max ms", max(latencies), 2)
        result.add("mean_ms", "mean ms", statistics.fmean(latencies), 2, detail=True)


async def _enqueue_paced(queue: JobQueue, count: int, interval: float) -> dict[int, float]:
    enqueued_at: dict[int, float] = {}
    start = time.perf_counter()
    for job in range(count):
        delay = start + job * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        enqueued_at[job] = time.time()
        await enqueue_one(queue, job)
    return enqueued_at


async def _verify(
    ctx: PhaseContext, result: PhaseResult, db: DbLocation, reader: JobLogReader
) -> None:
    total = ctx.config.latency_jobs + 1
    check_delivery(result, reader.delivery(range(total)))
    check_drained(result, await ctx.stats(db), total=total, completed=total)


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile the peer bench uses (``common.pct``)."""
    ordered = sorted(values)
    rank = round(pct / 100 * (len(ordered) - 1))
    return ordered[min(len(ordered) - 1, max(0, rank))]
