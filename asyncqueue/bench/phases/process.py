"""Processing phases: worker processes drain N pre-filled no-op jobs."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext

from asyncqueue.bench.checks import check_delivery, check_drained
from asyncqueue.bench.config import DbLocation
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.drain import record_outcome, run_workers, throughput
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.workload import fill


async def process_one_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """One worker process (one ``QueueWorker``, ``--concurrency``) drains N jobs."""
    await drain_prefilled(ctx, result, processes=1)


async def process_two_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """Two worker processes on one file drain N jobs."""
    await drain_prefilled(ctx, result, processes=2)


#: Serves a database while worker processes drain it: yields the API URL they use instead.
Served = Callable[[DbLocation], AbstractAsyncContextManager[str]]


async def drain_prefilled(
    ctx: PhaseContext, result: PhaseResult, processes: int, *, served: Served | None = None
) -> None:
    """Fill N jobs, let ``processes`` worker processes drain them, check and record.

    With ``served`` the workers are remote: they reach the queue through the API it serves.
    """
    n = ctx.config.n
    db = ctx.database()
    log, reader = ctx.job_log()
    async with ctx.queue(db) as queue:
        await fill(queue, range(n), ctx.config.fill_chunk)
    serving: AbstractAsyncContextManager[str | None] = (
        nullcontext(None) if served is None else served(db)
    )
    async with serving as url:
        outcome = await run_workers(
            ctx,
            db,
            log,
            reader,
            processes=processes,
            until=lambda: len(reader.first_start) >= n,
            url=url,
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
