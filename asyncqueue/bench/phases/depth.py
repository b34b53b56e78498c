"""Depth phase: do enqueue and processing stay fast as the backlog grows?

Each case pre-fills a backlog of B jobs (``--depth-small`` 10k or ``--depth-big`` 1M, with
``enqueue_many`` in large chunks), then:

- ``*-pending``: one worker process runs until min(N, B) jobs started, out of the B pending;
  the queue is topped back up to B pending (untimed); N sequential and N concurrent
  enqueues are timed on top of it.
- ``*-completed``: the backlog is run to completion in this process first (its rows are
  kept), N jobs are added (untimed) and one worker process drains them; then N sequential
  and N concurrent enqueues are timed beside the B + N completed rows.

Each figure is then compared with the small pending case's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from asyncqueue import JobQueue
from asyncqueue.bench.checks import check_delivery, check_drained, check_enqueued
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.drain import record_outcome, run_workers, throughput
from asyncqueue.bench.recorder import NoopWorker
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.workload import FillError, enqueue_concurrent, enqueue_sequential, fill

_RATES = ("process", "enqueue_seq", "enqueue_conc")


async def depth_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """Every configured depth case, then each case's throughput relative to small-pending."""
    for case in ctx.config.depth_cases:
        await _depth_case(ctx, result, case)
    _add_ratios(ctx, result)


@dataclass(slots=True)
class _Ids:
    """Hands out consecutive job numbers, so every job of a case has its own."""

    next: int = 0

    def take(self, count: int) -> range:
        taken = range(self.next, self.next + count)
        self.next += count
        return taken


async def _depth_case(ctx: PhaseContext, result: PhaseResult, case: str) -> None:
    config, n = ctx.config, ctx.config.n
    size, completed = config.depth_size(case), case.endswith("-completed")
    key, label = case.replace("-", "_"), depth_label(size, completed)
    db = ctx.database(f"-{case}")
    log, reader = ctx.job_log(f"-{case}")
    ids = _Ids()
    async with ctx.queue(db) as queue:
        fill_s = await fill(queue, ids.take(size), config.fill_chunk)
        result.add(f"fill_{key}_s", f"fill s, {label}", fill_s, 1, detail=True)
        if completed:
            complete_s = await _complete(ctx, queue, size)
            result.add(f"complete_{key}_s", f"complete s, {label}", complete_s, 1, detail=True)
            await fill(queue, ids.take(n), config.fill_chunk)
    pending = range(size, ids.next) if completed else range(ids.next)
    measured = min(n, len(pending))
    outcome = await run_workers(
        ctx, db, log, reader, name=f"-{case}", until=lambda: len(reader.first_start) >= measured
    )
    rate = throughput(reader.start_times()[:measured])
    if rate is not None:
        result.add(f"process_{key}_jobs_s", f"process jobs/s, {label}", rate)
    record_outcome(result, outcome, reader)
    required = pending if completed else ()
    check_delivery(result, reader.delivery(required=required, allowed=pending))
    async with ctx.queue(db) as queue:
        if not completed:  # back to B pending before timing enqueues
            await fill(queue, ids.take(len(reader.runs)), config.fill_chunk)
        await _time_enqueues(ctx, result, queue, ids.take(2 * n), key, label)
    done = (size if completed else 0) + len(reader.runs)
    check_drained(result, await ctx.stats(db), total=ids.next, completed=done)


async def _time_enqueues(
    ctx: PhaseContext, result: PhaseResult, queue: JobQueue, jobs: range, key: str, label: str
) -> None:
    """N sequential then N concurrent enqueues on top of the backlog (``jobs`` holds 2N)."""
    half = len(jobs) // 2
    seq_rate, seq_ids = await enqueue_sequential(queue, jobs[:half])
    conc_rate, conc_ids = await enqueue_concurrent(queue, jobs[half:], ctx.config.producers)
    result.add(f"enqueue_seq_{key}_jobs_s", f"enqueue seq jobs/s, {label}", seq_rate)
    result.add(f"enqueue_conc_{key}_jobs_s", f"enqueue 50 conc jobs/s, {label}", conc_rate)
    check_enqueued(result, seq_ids + conc_ids, len(jobs))


async def _complete(ctx: PhaseContext, queue: JobQueue, size: int) -> float:
    """Run the whole backlog in this process, so its rows are kept as completed."""
    started = time.perf_counter()
    ran = await NoopWorker(queue, concurrency=ctx.config.fill_concurrency).run_until_idle()
    if ran != size:
        raise FillError(f"completing the backlog ran {ran} of {size} jobs")
    return time.perf_counter() - started


def _add_ratios(ctx: PhaseContext, result: PhaseResult) -> None:
    figures = {m.key: m.value for m in result.metrics}
    small = depth_label(ctx.config.depth_small, completed=False)
    for case in ctx.config.depth_cases:
        key = case.replace("-", "_")
        if key == "small_pending":
            continue
        label = depth_label(ctx.config.depth_size(case), case.endswith("-completed"))
        for rate in _RATES:
            base = figures.get(f"{rate}_small_pending_jobs_s")
            value = figures.get(f"{rate}_{key}_jobs_s")
            if base and value is not None:
                result.add(
                    f"{rate}_{key}_vs_small_pct",
                    f"{rate.replace('_', ' ')} {label} vs {small}, %",
                    value / base * 100,
                )


def depth_label(size: int, completed: bool) -> str:
    """``"1M pending"``, ``"10k completed"``, ..."""
    if size >= 1_000_000 and size % 1_000_000 == 0:
        short = f"{size // 1_000_000}M"
    elif size >= 1_000 and size % 1_000 == 0:
        short = f"{size // 1_000}k"
    else:
        short = f"{size:,}"
    return f"{short} {'completed' if completed else 'pending'}"
