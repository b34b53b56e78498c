"""Running the API app under uvicorn: exposure checks, the bound URL, a clean exit on signals."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI

from asyncqueue.errors import ConfigurationError

#: How long requests in flight get to finish once the server is told to stop, in seconds.
GRACEFUL_SHUTDOWN_SECONDS = 30


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, *, authenticated: bool, allow_insecure_public: bool) -> None:
    """Refuse to serve without authentication beyond the loopback interface.

    Raises:
        ConfigurationError: no token, a non-loopback host, and no explicit permission.
    """
    if authenticated or is_loopback(host) or allow_insecure_public:
        return
    raise ConfigurationError(
        f"refusing to serve without an API token on {host}: anyone who can reach it could "
        "take and complete tasks. Configure a token, bind to 127.0.0.1, or pass "
        "--allow-insecure-public if the network is trusted"
    )


def server_url(server: uvicorn.Server, host: str) -> str:
    """The API's base URL, with the port the server bound (``--port 0`` picks one)."""
    port = server.config.port
    for listener in server.servers:
        for sock in listener.sockets:
            port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/api"


@contextlib.contextmanager
def _signals_survived() -> Iterator[None]:
    # uvicorn catches SIGINT/SIGTERM itself, shuts down gracefully, then raises the signal
    # again against the handlers it found. Finding these no-ops, the process then exits
    # normally (status 0) rather than being killed by its own signal.
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that says where it listens, and ends long polls when it stops."""

    def __init__(
        self,
        config: uvicorn.Config,
        announce: Callable[[str], None],
        stopping: Callable[[], None],
    ) -> None:
        super().__init__(config)
        self._announce = announce
        self._stopping = stopping

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce(server_url(self, self.config.host))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn lets requests in flight finish before the lifespan ends: long polls are
        # told first, or one could hold the stop up for its whole wait (30 s).
        self._stopping()
        await super().shutdown(sockets)


def run(app: FastAPI, *, host: str, port: int, announce: Callable[[str], None]) -> bool:
    """Serve ``app`` until SIGINT or SIGTERM; requests in flight finish, then the lifespan
    shuts down (closing the queue).

    Args:
        app: an app made by ``create_app``.
        host: the interface to bind.
        port: the port (0: any free one).
        announce: called with the base URL once the server listens.

    Returns:
        Whether the server started (False: its lifespan failed; uvicorn logged why).
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,  # requests are logged by AccessLogMiddleware, through structlog
        log_config=None,
        server_header=False,
        # Long polls end at once on a stop; anything else still running after this long
        # is cancelled, so that a stuck request cannot keep the process from stopping.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _AnnouncingServer(config, announce, app.state.enqueue_counter.close)
    with _signals_survived():
        asyncio.run(server.serve())
    return server.started
