"""Errors as HTTP answers: bad input is 400/413/422, a database in trouble 503, never 500.

``install_exception_handlers`` is part of ``create_app``; an app that includes the router
itself may call it too (without it, a body that is not JSON gets FastAPI's 422).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from asyncqueue.errors import (
    DatabaseBusyError,
    DatabaseError,
    QueueClosedError,
    ValidationError,
)

#: Seconds a client is asked to wait after a 503.
RETRY_AFTER_SECONDS = 1


def input_error(
    exc: ValidationError, location: str, renames: Mapping[str, str] | None = None
) -> RequestValidationError:
    """The queue's validation error as FastAPI's 422, naming the field the message is about.

    The queue's messages start with the argument's name (``priority must be ...``);
    ``renames`` maps those names to the API's (``job_type`` -> ``type``).
    """
    message = str(exc)
    first = message.split(" ", 1)[0]
    names = dict(renames or {})
    loc: tuple[str, ...] = (location,)
    if first in names:
        loc = (location, names[first])
    elif first.isidentifier():
        loc = (location, first)
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def _not_json(error: Mapping[str, Any]) -> bool:
    if error.get("type") == "json_invalid":
        return True
    # A body sent without a JSON content type reaches validation as raw bytes.
    return tuple(error.get("loc", ())) == ("body",) and isinstance(error.get("input"), bytes)


async def _validation_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(_not_json(error) for error in errors):
        return JSONResponse(
            {"detail": "the request body is not valid JSON (send Content-Type: application/json)"},
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    # Only where and why: the input itself is left out, as it may be large or hold values
    # JSON cannot carry (NaN), which would turn the answer into a server error.
    detail = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in errors
    ]
    return JSONResponse(jsonable_encoder({"detail": detail}), status_code=422)


async def _unavailable(request: Request, exc: Exception) -> Response:
    reason = "busy" if isinstance(exc, DatabaseBusyError) else "unavailable"
    return JSONResponse(
        {"detail": f"the queue's database is {reason}: {exc}"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_exception_handlers(app: FastAPI) -> None:
    """Answer a body that is not JSON with 400, and database trouble with 503."""
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(DatabaseError, _unavailable)
    app.add_exception_handler(QueueClosedError, _unavailable)
