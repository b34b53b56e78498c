"""A cap on request bodies, part of the router's routes (so it holds in any app)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

#: Largest request body accepted by default, in bytes.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class _CappedRequest(Request):
    """A request whose body is read at most up to a cap; a longer one answers 413."""

    max_body_bytes = DEFAULT_MAX_BODY_BYTES

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            self._body = await self._read_capped()
        return self._body

    async def _read_capped(self) -> bytes:
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        # Counted as it streams in too: a chunked body declares no length, and a client
        # may declare less than it sends.
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            chunks.append(chunk)
        return b"".join(chunks)


def _too_large(limit: int) -> HTTPException:
    # 413 by number: Starlette renamed the constant, and older releases lack the new name.
    return HTTPException(
        413,
        detail=f"the request body is larger than {limit} bytes",
    )


def capped_route_class(max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> type[APIRoute]:
    """An ``APIRoute`` class whose requests answer 413 past ``max_body_bytes``.

    FastAPI reads the body before validating it, through the request's ``body()``; this
    route hands it a request whose ``body()`` stops reading at the cap.
    """

    request_class = type("CappedRequest", (_CappedRequest,), {"max_body_bytes": max_body_bytes})

    class CappedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def capped(request: Request) -> Response:
                return await handler(request_class(request.scope, request.receive))

            return capped

    return CappedRoute
