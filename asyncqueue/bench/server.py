"""An ``asyncqueue serve`` process for the remote phases: start, wait until healthy, stop."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from asyncqueue.bench.config import DbLocation, SchemaUrl
from asyncqueue.bench.procs import STOP_TIMEOUT, child_environment, stderr_tail

#: Seconds a server gets to answer its health check after it started.
START_TIMEOUT = 30.0


@dataclass(slots=True)
class ServerProcess:
    """A running server on ``127.0.0.1``; ``api_url`` ends in ``/api``."""

    process: asyncio.subprocess.Process
    api_url: str
    stderr_path: Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_server(db: DbLocation, sync: str, stderr_path: Path) -> ServerProcess:
    """Serve ``db`` without a token on loopback; return once ``/api/health`` answers.

    Raises:
        RuntimeError: the server exited or did not answer within ``START_TIMEOUT``.
    """
    port = free_port()
    env = child_environment()
    env["QUEUE_SYNCHRONOUS"] = sync
    if isinstance(db, SchemaUrl):
        env["QUEUE_DB_SCHEMA"] = db.schema
    command = [sys.executable, "-m", "asyncqueue", f"--db={db}", "serve"]
    command += ["--host=127.0.0.1", f"--port={port}", "--insecure"]
    with stderr_path.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}/api", stderr_path)
    deadline = time.monotonic() + START_TIMEOUT
    while not await asyncio.to_thread(_healthy, server.api_url):
        if process.returncode is not None or time.monotonic() > deadline:
            await stop_server(server)
            raise RuntimeError(f"the server did not start: {stderr_tail(stderr_path)}")
        await asyncio.sleep(0.05)
    return server


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def stop_server(server: ServerProcess) -> str | None:
    """SIGTERM the server and wait; return a problem, or None after a clean exit."""
    process = server.process
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return f"the server ignored SIGTERM for {STOP_TIMEOUT:.0f} s and was killed"
    if code != 0:
        return f"the server exited with {code}: {stderr_tail(server.stderr_path)}"
    return None
