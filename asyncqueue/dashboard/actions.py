"""What changes something: logging in and out, retry, cancel, bulk retry.

Every action is a plain form POST answered with a redirect (303), so it works without
JavaScript and the back button never resubmits. Each one checks, in this order: the request
is not cross-site, the viewer is authenticated, the CSRF token is theirs, their role may act.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from asyncqueue.dashboard.app import Dashboard
from asyncqueue.dashboard.pages import BULK_RETRY_CAP, unauthenticated
from asyncqueue.dashboard.security import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    Viewer,
    cross_site_reason,
    csrf_matches,
)
from asyncqueue.job import JobStatus
from asyncqueue.validation import MAX_JOB_TYPE_LENGTH

#: Retries in flight at once: they share the writer's group commits.
_RETRY_BATCH = 256
#: Largest form body read, in bytes.
MAX_FORM_BYTES = 64 * 1024

Form = dict[str, str]
ActionHandler = Callable[[Request, Viewer, Form], Awaitable[Response]]


async def read_form(request: Request) -> Form | None:
    """A URL-encoded form's fields (the first value of each), or None if too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def _refused(status_code: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=status_code)


def acting(board: Dashboard, handler: ActionHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an action: same-site, authenticated, CSRF token matching, admin role."""

    async def endpoint(request: Request) -> Response:
        reason = cross_site_reason(request)
        if reason is not None:
            return _refused(403, reason)
        viewer = board.auth.viewer(request)
        if viewer is None:
            return unauthenticated(board, request)
        form = await read_form(request)
        if form is None:
            return _refused(413, "form too large")
        if not csrf_matches(viewer, form.get("csrf_token")):
            return _refused(403, "the form's CSRF token is missing or stale: reload the page")
        if not viewer.can_act:
            return _refused(403, f"a {viewer.role.value} login may not change jobs")
        return await handler(request, viewer, form)

    return endpoint


def _session_cookie(board: Dashboard, request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_SECONDS if value else 0,
        path=board.url(request, "overview"),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _safe_next(board: Dashboard, request: Request, target: str | None) -> str:
    """Where to go after logging in: a path inside the dashboard, never another site."""
    home = board.url(request, "overview")
    if not target or not target.startswith(home) or target.startswith("//") or "\\" in target:
        return home
    return target


def routes(board: Dashboard) -> list[Route]:
    """The action routes, and the login form."""

    async def login_form(request: Request) -> Response:
        next_url = _safe_next(board, request, request.query_params.get("next"))
        if board.auth.viewer(request) is not None:
            return RedirectResponse(next_url, status_code=303)
        return board.render(request, "login.html", None, next_url=next_url, error=None)

    async def login(request: Request) -> Response:
        reason = cross_site_reason(request)
        if reason is not None:
            return _refused(403, reason)
        form = await read_form(request)
        if form is None:
            return _refused(413, "form too large")
        next_url = _safe_next(board, request, form.get("next"))
        role, known = board.auth.token_role(form.get("token", "").strip())
        if role is None:
            error = (
                "A worker token cannot open the dashboard: use an admin or read token."
                if known
                else "That token is not valid."
            )
            return board.render(
                request,
                "login.html",
                None,
                status_code=403 if known else 401,
                next_url=next_url,
                error=error,
            )
        response = RedirectResponse(next_url, status_code=303)
        _session_cookie(board, request, response, board.auth.new_session(role))
        return response

    async def logout(request: Request) -> Response:
        if cross_site_reason(request) is not None:
            return _refused(403, "a cross-site request may not log you out")
        response = RedirectResponse(board.url(request, "login"), status_code=303)
        _session_cookie(board, request, response, "")
        return response

    async def retry(request: Request, viewer: Viewer, form: Form) -> Response:
        job_id = request.path_params["job_id"]
        done = await board.queue.retry_job(job_id) if job_id < 2**63 else False
        board.signal.bump()
        return _back_to_job(board, request, job_id, "retried" if done else "not-retried")

    async def cancel(request: Request, viewer: Viewer, form: Form) -> Response:
        job_id = request.path_params["job_id"]
        done = await board.queue.cancel_job(job_id) if job_id < 2**63 else False
        board.signal.bump()
        return _back_to_job(board, request, job_id, "cancelled" if done else "not-cancelled")

    async def bulk_retry(request: Request, viewer: Viewer, form: Form) -> Response:
        scope = form.get("scope", "all")
        job_type: str | None = None
        error: str | None = None
        if scope == "group":
            job_type, error = form.get("job_type"), form.get("error_message")
            if not _is_group(job_type, error):
                return _refused(400, "a group retry needs the group's job type and error")
        elif scope != "all":
            return _refused(400, "scope must be 'all' or 'group'")
        ids = [
            job.id
            for job in await board.queue.list_jobs(
                status=JobStatus.FAILED,
                job_type=job_type,
                error_message=error,
                limit=BULK_RETRY_CAP,
            )
        ]
        retried = 0
        for start in range(0, len(ids), _RETRY_BATCH):
            chunk = ids[start : start + _RETRY_BATCH]
            retried += sum(await asyncio.gather(*(board.queue.retry_job(i) for i in chunk)))
        remaining = await _still_failed(board, job_type, error)
        board.signal.bump()
        report = {
            "retried": retried,
            "skipped": len(ids) - retried,
            "remaining": remaining,
            "cap": BULK_RETRY_CAP,
            "scope": scope,
        }
        return RedirectResponse(board.url(request, "failed", report), status_code=303)

    return [
        Route("/login", login_form, methods=["GET"], name="login"),
        Route("/login", login, methods=["POST"], name="login_submit"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/jobs/{job_id:int}/retry", acting(board, retry), methods=["POST"], name="retry"),
        Route("/jobs/{job_id:int}/cancel", acting(board, cancel), methods=["POST"], name="cancel"),
        Route("/failed/retry", acting(board, bulk_retry), methods=["POST"], name="bulk_retry"),
    ]


def _back_to_job(board: Dashboard, request: Request, job_id: int, done: str) -> Response:
    return RedirectResponse(
        board.url(request, "job", {"done": done}, job_id=job_id), status_code=303
    )


def _is_group(job_type: str | None, error: str | None) -> bool:
    """Whether a posted group key could name a group of failed jobs at all."""
    return (
        job_type is not None
        and error is not None
        and 0 < len(job_type.strip()) <= MAX_JOB_TYPE_LENGTH
        and "\x00" not in job_type + error
    )


async def _still_failed(board: Dashboard, job_type: str | None, error: str | None) -> int:
    if job_type is None and error is None:
        return (await board.queue.get_queue_stats()).failed_jobs
    for group in await board.queue.get_failed_groups(10_000):
        if group.job_type == job_type and group.error_message == error:
            return group.count
    return 0
