"""The pages people read: overview, jobs, one job, failed jobs, workers; and the live stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from asyncqueue.dashboard.app import Dashboard, current_url
from asyncqueue.dashboard.charts import throughput_svg
from asyncqueue.dashboard.live import change_stream
from asyncqueue.dashboard.security import Viewer
from asyncqueue.dashboard.snapshot import CHART_BUCKETS, CHART_WINDOW
from asyncqueue.job import JobStatus
from asyncqueue.validation import MAX_JOB_TYPE_LENGTH, MAX_TARGET_ID_LENGTH

#: Jobs shown per page.
PAGE_SIZE = 50
#: Failed-job groups shown.
GROUPS_SHOWN = 50
#: Newest failed jobs listed below the groups.
RECENT_FAILED = 20
#: Most jobs one bulk-retry click retries (Oban's cap): the rest wait for the next click.
BULK_RETRY_CAP = 1000

Handler = Callable[[Request, Viewer], Awaitable[Response]]


def unauthenticated(board: Dashboard, request: Request) -> Response:
    """A browser is sent to the login form; a script or a partial fetch gets 401."""
    page = "text/html" in request.headers.get("accept", "")
    if page and "hx-request" not in request.headers:
        login = board.url(request, "login", {"next": current_url(request)})
        return RedirectResponse(login, status_code=303)
    return PlainTextResponse(
        "log in, or send an API token as the HTTP Basic password",
        status_code=401,
        headers={"www-authenticate": 'Basic realm="asyncqueue dashboard", charset="UTF-8"'},
    )


def viewing(board: Dashboard, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page handler: it runs only for an authenticated viewer."""

    async def endpoint(request: Request) -> Response:
        viewer = board.auth.viewer(request)
        if viewer is None:
            return unauthenticated(board, request)
        return await handler(request, viewer)

    return endpoint


@dataclass(frozen=True)
class JobFilters:
    """The jobs page's filters, as read from (and written back to) its URL."""

    statuses: list[str] = field(default_factory=list)
    job_type: str | None = None
    target_id: str | None = None
    before_id: int | None = None
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_request(cls, request: Request) -> JobFilters:
        """Read the filters; unknown values are dropped and reported."""
        problems: list[str] = []
        statuses = []
        for value in request.query_params.getlist("status"):
            if value in JobStatus.__members__.values():
                statuses.append(value)
            elif value:
                problems.append(f"unknown status {value!r}")
        before: int | None = None
        raw_before = request.query_params.get("before")
        if raw_before:
            if raw_before.isdigit() and len(raw_before) < 19:
                before = int(raw_before)
            else:
                problems.append(f"bad page cursor {raw_before!r}")
        return cls(
            statuses=statuses,
            job_type=_text_filter(request, "type", MAX_JOB_TYPE_LENGTH, problems),
            target_id=_text_filter(request, "target", MAX_TARGET_ID_LENGTH, problems),
            before_id=before,
            problems=problems,
        )

    def query(self, before_id: int | None = None) -> dict[str, object]:
        """The filters as query parameters, with a page cursor."""
        return {
            "status": self.statuses,
            "type": self.job_type,
            "target": self.target_id,
            "before": before_id,
        }


def _text_filter(request: Request, name: str, limit: int, problems: list[str]) -> str | None:
    """A text filter from the URL, or None (reported) when no job could ever match it."""
    value = request.query_params.get(name) or None
    if value is not None and (len(value) > limit or "\x00" in value):
        problems.append(f"{name} filter longer than {limit} characters or holding a NUL")
        return None
    return value


def routes(board: Dashboard) -> list[Route]:
    """The page routes."""

    async def overview(request: Request, viewer: Viewer) -> Response:
        counts = await board.snapshot.counts()
        metrics = await board.snapshot.metrics()
        chart = throughput_svg(metrics.throughput, CHART_WINDOW / CHART_BUCKETS)
        return board.render(
            request,
            "overview.html",
            viewer,
            counts=counts,
            metrics=metrics.metrics,
            throughput=metrics.throughput,
            chart=chart,
            statuses=list(JobStatus),
            alive_workers=[w for w in counts.workers if w.alive],
            now=datetime.now(UTC),
        )

    async def jobs(request: Request, viewer: Viewer) -> Response:
        filters = JobFilters.from_request(request)
        counts = await board.snapshot.counts()
        found = await board.queue.list_jobs(
            status=filters.statuses or None,
            job_type=filters.job_type,
            target_id=filters.target_id,
            before_id=filters.before_id,
            limit=PAGE_SIZE + 1,
        )
        page, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
        matching = (
            None if filters.target_id else counts.matching(filters.statuses, filters.job_type)
        )
        return board.render(
            request,
            "jobs.html",
            viewer,
            counts=counts,
            filters=filters,
            jobs=page,
            older=filters.query(page[-1].id) if more and page else None,
            first_page=filters.query() if filters.before_id is not None else None,
            matching=matching,
            statuses=list(JobStatus),
            job_types=sorted(counts.by_type),
            now=datetime.now(UTC),
        )

    async def job(request: Request, viewer: Viewer) -> Response:
        job_id = request.path_params["job_id"]
        counts = await board.snapshot.counts()
        found = await board.queue.get_job(job_id) if job_id < 2**63 else None
        if found is None:
            return board.render(
                request, "missing.html", viewer, status_code=404, counts=counts, job_id=job_id
            )
        history = await board.queue.get_job_history(job_id)
        attempts = [event for event in history if event.error]
        return board.render(
            request,
            "job.html",
            viewer,
            counts=counts,
            job=found,
            history=history,
            attempts=attempts,
            can_retry=found.status in (JobStatus.FAILED, JobStatus.CANCELLED),
            can_cancel=found.status in (JobStatus.PENDING, JobStatus.RETRY_SCHEDULED),
            done=request.query_params.get("done"),
            now=datetime.now(UTC),
        )

    async def failed(request: Request, viewer: Viewer) -> Response:
        counts = await board.snapshot.counts()
        groups = await board.queue.get_failed_groups(GROUPS_SHOWN)
        recent = await board.queue.list_jobs(status=JobStatus.FAILED, limit=RECENT_FAILED)
        report = {
            key: request.query_params.get(key)
            for key in ("retried", "skipped", "remaining", "cap", "scope")
        }
        return board.render(
            request,
            "failed.html",
            viewer,
            counts=counts,
            groups=groups,
            recent=recent,
            report=report if report["retried"] is not None else None,
            cap=BULK_RETRY_CAP,
            now=datetime.now(UTC),
        )

    async def workers(request: Request, viewer: Viewer) -> Response:
        counts = await board.snapshot.counts()
        held = await board.queue.list_jobs(status=JobStatus.PROCESSING, limit=500)
        by_worker: dict[str, list[int]] = {}
        for running in held:
            by_worker.setdefault(running.worker_id or "", []).append(running.id)
        return board.render(
            request,
            "workers.html",
            viewer,
            counts=counts,
            workers=counts.workers,
            held=by_worker,
            held_total=len(held),
            now=datetime.now(UTC),
        )

    async def events(request: Request, viewer: Viewer) -> Response:
        return StreamingResponse(
            change_stream(board.signal, request.is_disconnected),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    return [
        Route("/", viewing(board, overview), name="overview"),
        Route("/jobs", viewing(board, jobs), name="jobs"),
        Route("/jobs/{job_id:int}", viewing(board, job), name="job"),
        Route("/failed", viewing(board, failed), name="failed"),
        Route("/workers", viewing(board, workers), name="workers"),
        Route("/events", viewing(board, events), name="events"),
    ]
