"""Remote phases: workers in other processes reach the queue only through ``asyncqueue serve``.

Throughput through one server with 1, 4 and 8 remote worker processes, and the latency
from an enqueue to a remote worker starting the job (an idle worker long-polls).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asyncqueue.bench.checks import check_delivery, check_drained
from asyncqueue.bench.config import DbLocation
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.drain import record_outcome, run_workers, throughput
from asyncqueue.bench.phases.latency import measure_latency
from asyncqueue.bench.procs import any_exited, stop_workers
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.server import ServerProcess, start_server, stop_server
from asyncqueue.bench.workload import fill


@asynccontextmanager
async def _served(ctx: PhaseContext, result: PhaseResult, db: DbLocation) -> AsyncIterator[str]:
    server: ServerProcess = await start_server(db, ctx.sync, ctx.output("-server"))
    try:
        yield server.api_url
    finally:
        problem = await stop_server(server)
        result.check("server_clean_stop", problem is None, problem or "")


async def remote_one_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """One remote worker process drains N jobs through the server."""
    await _remote_process(ctx, result, processes=1)


async def remote_four_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """Four remote worker processes drain N jobs through one server."""
    await _remote_process(ctx, result, processes=4)


async def remote_eight_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """Eight remote worker processes drain N jobs through one server."""
    await _remote_process(ctx, result, processes=8)


async def _remote_process(ctx: PhaseContext, result: PhaseResult, processes: int) -> None:
    n = ctx.config.n
    db = ctx.database()
    log, reader = ctx.job_log()
    async with ctx.queue(db) as queue:
        await fill(queue, range(n), ctx.config.fill_chunk)
    async with _served(ctx, result, db) as url:
        outcome = await run_workers(
            ctx,
            db,
            log,
            reader,
            processes=processes,
            until=lambda: len(reader.first_start) >= n,
            url=url,
        )
    rate = throughput(reader.start_times())
    if rate is not None:
        result.add("jobs_s", "jobs/s", rate)
    record_outcome(result, outcome, reader)
    check_delivery(result, reader.delivery(range(n)))
    check_drained(result, await ctx.stats(db), total=n, completed=n)


async def latency_remote_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """An idle remote worker; jobs enqueued into the file the server serves, one per 10 ms."""
    db = ctx.database()
    log, reader = ctx.job_log()
    async with _served(ctx, result, db) as url, ctx.queue(db) as queue:
        worker = await ctx.spawn(db, log, "-w0", url)
        try:
            await measure_latency(ctx, result, queue, reader, gave_up=any_exited([worker]))
        finally:
            problems = await stop_workers([worker])
    reader.poll()
    result.check("clean_stop", not problems, "; ".join(problems))
    total = ctx.config.latency_jobs + 1
    check_delivery(result, reader.delivery(range(total)))
    check_drained(result, await ctx.stats(db), total=total, completed=total)
