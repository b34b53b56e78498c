"""The standalone API app: the router, its error handlers, and a lifespan that opens the
queue and sweeps expired leases."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI

from asyncqueue import __version__
from asyncqueue.queue import JobQueue
from asyncqueue.server.access_log import AccessLogMiddleware
from asyncqueue.server.auth import ApiTokens, TokenAuth
from asyncqueue.server.errors import install_exception_handlers
from asyncqueue.server.limits import DEFAULT_MAX_BODY_BYTES
from asyncqueue.server.notify import EnqueueCounter
from asyncqueue.server.routes import create_router
from asyncqueue.server.sweeper import lease_sweeper


def create_app(
    queue: JobQueue | None = None,
    *,
    db: str | os.PathLike[str] | None = None,
    tokens: ApiTokens | None = None,
    insecure: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    sweep: bool = True,
    dashboard: bool = True,
) -> FastAPI:
    """The HTTP API as a FastAPI app, serving one queue.

    Its lifespan opens the queue, runs the lease sweeper (remote workers cannot take back
    each other's expired leases) and, on shutdown, closes the queue if the app made it.

    Args:
        queue: the queue to serve (default: a new ``JobQueue(db)``, settings from the
            ``QUEUE_*`` environment variables).
        db: the database file of the queue the app makes; ignored when ``queue`` is given.
        tokens: the API tokens (default: from ``QUEUE_API_TOKEN`` and ``QUEUE_API_TOKENS``).
        insecure: with no token at all, serve without authentication. Only for a server
            bound to the loopback interface.
        max_body_bytes: larger request bodies are answered 413.
        sweep: run the lease sweeper in the lifespan.
        dashboard: serve the web dashboard at ``/``, with the same tokens.

    Raises:
        ConfigurationError: no token configured and not ``insecure``, or a malformed token
            variable or queue setting.
    """
    auth = TokenAuth(
        tokens if tokens is not None else ApiTokens.from_environment(), insecure=insecure
    )
    owned = queue is None
    served = queue if queue is not None else JobQueue(db)
    counter = EnqueueCounter(served)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await served.open()
        counter.attach()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if sweep:
                    await stack.enter_async_context(lease_sweeper(served))
                yield
        finally:
            counter.detach()
            if owned:
                await served.close()

    app = FastAPI(
        title="asyncqueue",
        version=__version__,
        description="The HTTP API of an asyncqueue job queue: remote workers and operators.",
        lifespan=lifespan,
    )
    app.include_router(create_router(served, auth, max_body_bytes=max_body_bytes, counter=counter))
    if dashboard:
        from asyncqueue.dashboard import dashboard as dashboard_app  # it imports server.auth

        app.mount("/", dashboard_app(served, tokens=auth.tokens, insecure=insecure))
    install_exception_handlers(app)
    app.add_middleware(AccessLogMiddleware)
    app.state.queue = served
    app.state.enqueue_counter = counter
    return app
