"""Resource phases: CPU of an idle worker process, and its memory while it drains jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from asyncqueue.bench.checks import check_delivery, check_drained
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.drain import record_outcome, run_workers
from asyncqueue.bench.joblog import JobLogReader
from asyncqueue.bench.procs import (
    WorkerProcess,
    any_exited,
    cpu_seconds,
    cpu_seconds_precise,
    rss_bytes,
    stop_workers,
    wait_for_jobs,
)
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.workload import enqueue_one, fill

_SETTLE_SECONDS = 0.5
_RSS_SAMPLE_SECONDS = 0.05
_MB = 1024 * 1024


async def idle_cpu_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """CPU use of a started, idle worker process over ``--idle-seconds`` (2 s)."""
    db = ctx.database()
    log, reader = ctx.job_log()
    async with ctx.queue(db) as queue:
        worker = await ctx.spawn(db, log, "-w0")
        try:
            await enqueue_one(queue, 0)  # proves the worker is up
            ready = await wait_for_jobs(
                reader,
                lambda: 0 in reader.first_start,
                stall_timeout=ctx.config.stall_timeout,
                gave_up=any_exited([worker]),
            )
            result.check("finished", ready, "" if ready else "the warm-up job never ran")
            if ready:
                await queue.close()
                await asyncio.sleep(_SETTLE_SECONDS)
                await _measure_cpu(result, worker.pid, ctx.config.idle_seconds)
        finally:
            problems = await stop_workers([worker])
    reader.poll()
    result.check("clean_stop", not problems, "; ".join(problems))
    check_delivery(result, reader.delivery(range(1)))
    check_drained(result, await ctx.stats(db), total=1, completed=1)


async def _measure_cpu(result: PhaseResult, pid: int, seconds: float) -> None:
    ticks_before, precise_before = cpu_seconds(pid), cpu_seconds_precise(pid)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    ticks_after, precise_after = cpu_seconds(pid), cpu_seconds_precise(pid)
    elapsed = time.monotonic() - started
    if precise_before is not None and precise_after is not None:
        result.add("cpu_pct", "% of a core", (precise_after - precise_before) / elapsed * 100, 2)
    if ticks_before is not None and ticks_after is not None:
        share = (ticks_after - ticks_before) / elapsed * 100
        if not any(m.key == "cpu_pct" for m in result.metrics):
            result.add("cpu_pct", "% of a core", share, 2)
        result.add("cpu_pct_ticks", "% of a core (clock ticks)", share, 1, detail=True)
    if not result.metrics:
        result.notes.append("no /proc on this system: CPU not measured")
    result.add("idle_s", "measured over s", elapsed, 1, detail=True)


async def memory_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """RSS of a worker process (``/proc/<pid>/status`` VmRSS) while it drains the backlog."""
    jobs = ctx.config.memory_jobs
    db = ctx.database()
    log, reader = ctx.job_log()
    async with ctx.queue(db) as queue:
        await fill(queue, range(jobs), ctx.config.fill_chunk)
    sampler = _RssSampler(reader)
    outcome = await run_workers(
        ctx, db, log, reader, until=lambda: len(reader.first_start) >= jobs, on_poll=sampler.sample
    )
    samples = sampler.samples
    if samples:
        baseline = samples[0]
        result.add("rss_growth_mb", "RSS growth MB", (max(samples) - baseline) / _MB, 1)
        result.add("rss_start_mb", "RSS at first job MB", baseline / _MB, 1, detail=True)
        result.add("rss_end_mb", "RSS at last job MB", samples[-1] / _MB, 1, detail=True)
        result.add("rss_peak_mb", "RSS peak MB", max(samples) / _MB, 1)
        result.add("jobs", "jobs drained", jobs)
    else:
        result.notes.append("no /proc on this system: RSS not sampled")
    record_outcome(result, outcome, reader)
    check_delivery(result, reader.delivery(range(jobs)))
    check_drained(result, await ctx.stats(db), total=jobs, completed=jobs)


class _RssSampler:
    """Samples a worker's RSS every 50 ms once its first job has started."""

    def __init__(self, reader: JobLogReader) -> None:
        self._reader = reader
        self._last = 0.0
        self.samples: list[int] = []

    def sample(self, workers: Sequence[WorkerProcess]) -> None:
        now = time.monotonic()
        if self._reader.first_start and now - self._last >= _RSS_SAMPLE_SECONDS:
            rss = rss_bytes(workers[0].pid)
            if rss is not None:
                self.samples.append(rss)
                self._last = now
