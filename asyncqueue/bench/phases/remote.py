"""Remote phases: workers in other processes reach the queue only through ``asyncqueue serve``.

Throughput through one server with 1, 4 and 8 remote worker processes, and the latency
from an enqueue to a remote worker starting the job (an idle worker long-polls).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asyncqueue.bench.config import DbLocation
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.phases.latency import latency_in_another_process
from asyncqueue.bench.phases.process import Served, drain_prefilled
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.server import ServerProcess, start_server, stop_server


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
    await drain_prefilled(ctx, result, processes=1, served=_server_of(ctx, result))


async def remote_four_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """Four remote worker processes drain N jobs through one server."""
    await drain_prefilled(ctx, result, processes=4, served=_server_of(ctx, result))


async def remote_eight_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """Eight remote worker processes drain N jobs through one server."""
    await drain_prefilled(ctx, result, processes=8, served=_server_of(ctx, result))


def _server_of(ctx: PhaseContext, result: PhaseResult) -> Served:
    return lambda db: _served(ctx, result, db)


async def latency_remote_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """An idle remote worker; jobs enqueued into the database the server serves, one per
    10 ms."""
    db = ctx.database()
    async with _served(ctx, result, db) as url:
        await latency_in_another_process(ctx, result, db, url)
