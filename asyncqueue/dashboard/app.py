"""The dashboard as a Starlette app: :func:`dashboard` builds it, to serve or to mount."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from asyncqueue import __version__
from asyncqueue.dashboard import formatting
from asyncqueue.dashboard.live import ChangeSignal
from asyncqueue.dashboard.security import DashboardAuth, SecurityHeaders, Viewer
from asyncqueue.dashboard.snapshot import SnapshotCache
from asyncqueue.queue import JobQueue
from asyncqueue.server.auth import ApiTokens

_HERE = Path(__file__).parent

#: Environment variable holding the session secret (see :class:`DashboardAuth`).
SECRET_VARIABLE = "QUEUE_DASHBOARD_SECRET"


class Dashboard:
    """What every page handler shares: the queue, who may do what, the snapshot, templates.

    Args:
        queue: the queue shown.
        auth: who may see and act.
    """

    def __init__(self, queue: JobQueue, auth: DashboardAuth, poll_seconds: float = 20.0) -> None:
        self.queue = queue
        self.auth = auth
        #: Pages also re-fetch themselves this often, in case the event stream is blocked.
        self.poll = f"{max(poll_seconds, 1.0):g}s"
        self.signal = ChangeSignal(queue)
        self.snapshot = SnapshotCache(queue, lambda: self.signal.seq)
        self.app: Starlette | None = None
        self.templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(formatting.FILTERS)

    def close(self) -> None:
        """End every open live-update stream now (call it as the server stops)."""
        self.signal.close()

    def url(
        self, request: Request, name: str, query: Mapping[str, Any] | None = None, **params: Any
    ) -> str:
        """The path of a dashboard route, under wherever the dashboard is served.

        Built from the dashboard's own routes and the request's ``root_path`` (a proxy's
        prefix plus the mount point), so links work mounted anywhere, behind any proxy.
        """
        assert self.app is not None
        path = self.app.router.url_path_for(name, **params)
        root: str = request.scope.get("root_path", "")
        url = root.rstrip("/") + str(path)
        if query:
            pairs = [
                (key, value)
                for key, values in query.items()
                for value in (values if isinstance(values, list | tuple) else [values])
                if value not in (None, "")
            ]
            if pairs:
                url += "?" + urlencode(pairs)
        return url

    def render(
        self,
        request: Request,
        template: str,
        viewer: Viewer | None,
        *,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A page from a template, with the helpers every template uses."""

        def url(name: str, query: Mapping[str, Any] | None = None, **params: Any) -> str:
            return self.url(request, name, query, **params)

        page: str = self.templates.get_template(template).render(
            request=request,
            viewer=viewer,
            url=url,
            static=lambda name: url("static", path=name),
            here=current_url(request),
            poll=self.poll,
            version=__version__,
            **context,
        )
        return HTMLResponse(page, status_code=status_code, headers={"cache-control": "no-store"})


def current_url(request: Request) -> str:
    """The request's path and query, as the browser asked for them."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def dashboard(
    queue: JobQueue,
    *,
    tokens: ApiTokens | None = None,
    insecure: bool = False,
    read_only: bool = False,
    secret: str | bytes | None = None,
    poll_seconds: float = 20.0,
) -> Starlette:
    """The web dashboard of ``queue``, as a Starlette app to serve or mount::

        app.mount("/admin/queue", dashboard(queue, tokens=ApiTokens.admin(token)))

    Closed by default, like the API: it takes the same tokens (``admin`` acts, ``read``
    only sees). The app does not open or close the queue: the host app's lifespan does
    (``asyncqueue serve`` and ``create_app`` do both).

    Args:
        queue: the queue to show.
        tokens: who may log in (default: from ``QUEUE_API_TOKEN`` and ``QUEUE_API_TOKENS``).
        insecure: with no token at all, let everyone in. Only on a loopback-only server.
        read_only: nobody may act, admins included.
        secret: signs the session cookies (default: ``QUEUE_DASHBOARD_SECRET``, else random
            per process, so restarting logs everyone out).
        poll_seconds: pages also re-fetch themselves this often (at least 1 s), for when a
            proxy blocks the live event stream.

    Returns:
        The app; ``app.state.dashboard`` is its :class:`Dashboard` (``close()`` ends the
        live streams, for a host whose server waits for open responses before stopping).

    Raises:
        ConfigurationError: no token configured and not ``insecure``.
    """
    from asyncqueue.dashboard import actions, pages

    auth = DashboardAuth(
        tokens if tokens is not None else ApiTokens.from_environment(),
        insecure=insecure,
        read_only=read_only,
        secret=secret if secret is not None else os.environ.get(SECRET_VARIABLE) or None,
    )
    board = Dashboard(queue, auth, poll_seconds)
    routes = [
        *pages.routes(board),
        *actions.routes(board),
        Mount("/static", app=StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    app = _DashboardApp(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.dashboard = board
    board.app = app
    return app


class _DashboardApp(Starlette):
    """A Starlette app whose security headers go out on every response, the 500 that
    Starlette's outermost error middleware sends included."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def _not_found(request: Request, exc: Exception) -> Response:
    if _wants_html(request):
        return HTMLResponse("<!doctype html><title>Not found</title><h1>Not found</h1>", 404)
    return JSONResponse({"detail": "Not Found"}, 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    headers = exc.headers if isinstance(exc, HTTPException) else None
    return PlainTextResponse("Method Not Allowed", 405, headers=headers)


__all__ = ["SECRET_VARIABLE", "Dashboard", "dashboard"]
