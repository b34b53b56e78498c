"""Real servers and a real browser for the dashboard's browser tests.

Two uvicorn servers on 127.0.0.1 run in a thread of their own, on one event loop and one
queue: the app ``asyncqueue serve`` runs (``create_app``: the API at /api, the dashboard at
/), and an app of a user's that mounts the dashboard at /admin/queue, reachable directly and
as if behind a proxy that strips /proxy (uvicorn's ``--root-path``: the prefix stays in the
path and ``root_path`` names it). Tests change the database from their own thread through
a second ``JobQueue`` on the same file, as another process would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from remote_support import free_port
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from asyncqueue import JobQueue
from asyncqueue.dashboard import Dashboard, dashboard
from asyncqueue.dashboard.security import SESSION_COOKIE
from asyncqueue.server import ApiTokens, create_app

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ADMIN_TOKEN = "browser-admin-token"
READ_TOKEN = "browser-read-token"
TOKENS = ApiTokens.parse(f"admin {ADMIN_TOKEN}\nread {READ_TOKEN}")
#: The mounted dashboard's polling interval (the fallback when the event stream is blocked).
POLL_SECONDS = 2.0
#: Where screenshots are also copied when set (``DASHBOARD_SCREENSHOTS=docs``).
SCREENSHOTS_VARIABLE = "DASHBOARD_SCREENSHOTS"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not os.path.exists(CHROMIUM) and shutil.which("chromium") is None:
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


class ProxyPrefix:
    """What uvicorn hands an app behind a proxy that strips ``prefix`` (``--root-path``)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix + "/"):
            scope = {**scope, "root_path": self.prefix}
        await self.app(scope, receive, send)


def _dashboard_of(app: FastAPI) -> Dashboard:
    for route in app.routes:
        state = getattr(getattr(route, "app", None), "state", None)
        if state is not None and hasattr(state, "dashboard"):
            board: Dashboard = state.dashboard
            return board
    raise AssertionError("no dashboard mounted")


class Servers:
    """The two servers, in a background thread; ``start()`` then ``stop()``."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.serve_port = free_port()
        self.mount_port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[uvicorn.Server] = []
        self._boards: list[Dashboard] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-servers", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL of the ``serve`` app (no trailing slash)."""
        return f"http://127.0.0.1:{self.serve_port}"

    @property
    def mount_url(self) -> str:
        """The base URL of the app that mounts the dashboard."""
        return f"http://127.0.0.1:{self.mount_port}"

    def csrf_of(self, session: str) -> str:
        """The CSRF token the ``serve`` app's dashboard expects with the session cookie
        ``session`` (a read login's pages carry none)."""
        cookie = f"{SESSION_COOKIE}={session}".encode()
        viewer = self._boards[0].auth.viewer(
            Request({"type": "http", "headers": [(b"cookie", cookie)]})
        )
        assert viewer is not None, "not a valid session"
        return viewer.csrf

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the servers did not start")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(30)

    def _shutdown(self) -> None:
        for board in self._boards:
            board.close()
        for server in self._servers:
            server.should_exit = True

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        queue = JobQueue(self.db)
        api = create_app(queue, tokens=TOKENS)
        host = FastAPI()
        mounted = dashboard(queue, tokens=TOKENS, poll_seconds=POLL_SECONDS)
        host.mount("/admin/queue", mounted)
        self._boards = [_dashboard_of(api), mounted.state.dashboard]
        for app, port in ((api, self.serve_port), (ProxyPrefix(host, "/proxy"), self.mount_port)):
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="on" if app is api else "off",
                access_log=False,
                timeout_graceful_shutdown=5,
            )
            self._servers.append(uvicorn.Server(config))
        tasks = [asyncio.create_task(server.serve()) for server in self._servers]
        while not all(server.started for server in self._servers):
            if any(task.done() for task in tasks):
                break
            await asyncio.sleep(0.02)
        self._ready.set()
        await asyncio.gather(*tasks)
        await queue.close()


def with_queue(db: Path, work: Callable[[JobQueue], Awaitable[T]], **settings: Any) -> T:
    """Run ``work`` on a queue of its own on ``db`` (as another process would), return its
    result."""

    async def run() -> T:
        async with JobQueue(db, **settings) as queue:
            return await work(queue)

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def screenshot_path(tmp_dir: Path, name: str) -> Path:
    return tmp_dir / f"dashboard-{name}.png"


def keep_screenshot(path: Path) -> None:
    """Copy a screenshot to ``$DASHBOARD_SCREENSHOTS`` (the README's pictures), if set."""
    target = os.environ.get(SCREENSHOTS_VARIABLE)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / path.name)
