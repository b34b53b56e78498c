"""One structlog event per HTTP request: method, path, status, duration."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asyncqueue.logs import get_logger


class AccessLogMiddleware:
    """Logs ``http.request`` with method, path, status and duration_ms for each request.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``), so long polls still see a client
    disconnect and responses stream through untouched. Replaces uvicorn's access log, so
    requests go through the same structlog pipeline as the queue's own events.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._log = get_logger("asyncqueue.server")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status["code"],
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
