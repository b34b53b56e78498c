"""Enqueue phases: sequential awaited calls, concurrent producers, ``enqueue_many``."""

from __future__ import annotations

from asyncqueue import JobId
from asyncqueue.bench.checks import check_enqueued, check_stats
from asyncqueue.bench.config import DbLocation
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.workload import enqueue_chunks, enqueue_concurrent, enqueue_sequential


async def enqueue_sequential_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """N awaited ``enqueue()`` calls, one after another."""
    db = ctx.database()
    async with ctx.queue(db) as queue:
        rate, ids = await enqueue_sequential(queue, range(ctx.config.n))
    await _verify(ctx, result, db, rate, ids)


async def enqueue_concurrent_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """N ``enqueue()`` calls shared by ``--producers`` (50) coroutines."""
    db = ctx.database()
    async with ctx.queue(db) as queue:
        rate, ids = await enqueue_concurrent(queue, range(ctx.config.n), ctx.config.producers)
    await _verify(ctx, result, db, rate, ids)


async def enqueue_many_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """N jobs through ``enqueue_many`` in chunks of ``--chunk`` (1,000)."""
    db = ctx.database()
    async with ctx.queue(db) as queue:
        rate, ids = await enqueue_chunks(queue, range(ctx.config.n), ctx.config.chunk)
    await _verify(ctx, result, db, rate, ids)


async def _verify(
    ctx: PhaseContext, result: PhaseResult, db: DbLocation, rate: float, ids: list[JobId]
) -> None:
    n = ctx.config.n
    result.add("jobs_s", "jobs/s", rate)
    check_enqueued(result, ids, n)
    stats = await ctx.stats(db)
    check_stats(result, stats, total_jobs=n, pending_jobs=n, processing_jobs=0)
