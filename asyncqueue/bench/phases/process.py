"""Processing phases: worker processes drain N pre-filled no-op jobs."""

from __future__ import annotations

from asyncqueue.bench.checks import check_delivery, check_drained
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.drain import record_outcome, run_workers, throughput
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.workload import fill


async def process_one_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """One worker process (one ``QueueWorker``, ``--concurrency``) drains N jobs."""
    await _process(ctx, result, processes=1)


async def process_two_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """Two worker processes on one file drain N jobs."""
    await _process(ctx, result, processes=2)


async def _process(ctx: PhaseContext, result: PhaseResult, processes: int) -> None:
    n = ctx.config.n
    db = ctx.database()
    log, reader = ctx.job_log()
    async with ctx.queue(db) as queue:
        await fill(queue, range(n), ctx.config.fill_chunk)
    outcome = await run_workers(
        ctx, db, log, reader, processes=processes, until=lambda: len(reader.first_start) >= n
    )
    starts = reader.start_times()
    rate = throughput(starts)
    if rate is not None:
        result.add("jobs_s", "jobs/s", rate)
        result.add(
            "jobs_s_incl_startup",
            "jobs/s incl. startup",
            len(starts) / (starts[-1] - outcome.spawned_at),
        )
        result.add("startup_s", "startup s", starts[0] - outcome.spawned_at, 2)
    record_outcome(result, outcome, reader)
    check_delivery(result, reader.delivery(range(n)))
    check_drained(result, await ctx.stats(db), total=n, completed=n)
