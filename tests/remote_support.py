"""Servers for the remote-worker tests: in this process (uvicorn task) or as a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Self

import uvicorn

from asyncqueue import JobQueue
from asyncqueue.server import ApiTokens, create_app

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
#: The admin token every test server accepts.
TOKEN = "test-admin-token"
#: Real seconds a test waits for a server to start or stop.
STARTUP_SECONDS = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def live_server(queue: JobQueue, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``queue`` over real HTTP from this event loop; yield the API URL.

    The server's lifespan opens the queue; leaving the block stops the server (and with it
    the queue's sweeper) but leaves the queue to the caller.
    """
    port = free_port() if port is None else port
    app = create_app(queue, tokens=ApiTokens.admin(TOKEN))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    # The test owns the process's signals; uvicorn must not take them over.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        server.should_exit = True
        await task


def environment(**extra: str) -> dict[str, str]:
    """This environment with the project and tests importable, plus ``extra``."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT), str(TESTS), *filter(None, env.get("PYTHONPATH", "").split(":"))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def healthy(api_url: str) -> bool:
    """Whether ``GET /api/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServeProcess:
    """``asyncqueue --db DB serve`` in a subprocess on a fixed port; restartable."""

    def __init__(self, db: Path, log: Path, *, port: int | None = None, **env: str) -> None:
        self.db = db
        self.log = log
        self.port = free_port() if port is None else port
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.env = environment(QUEUE_API_TOKEN=TOKEN, **env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers its health check."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "asyncqueue", "--db", str(self.db), "serve"),
                    *("--host", "127.0.0.1", "--port", str(self.port)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while not healthy(self.api_url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal the server and wait for it; return its exit status."""
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server ignored {sig.name}:\n{self.output()}") from None

    def output(self) -> str:
        """What the server printed so far (the end of it)."""
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
