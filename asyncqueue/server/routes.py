"""The HTTP API as an ``APIRouter``: the seed's worker routes and the batching routes of
``RemoteQueue`` here, the operator's in ``operator_routes``. Every route calls
``JobQueue``'s public verbs.

Include it in your own FastAPI app with ``app.include_router(create_router(queue, auth))``;
your app's lifespan must then open the queue and take back expired leases (see
``asyncqueue.server.lease_sweeper``), as ``create_app`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.responses import JSONResponse, Response

from asyncqueue.errors import ValidationError
from asyncqueue.queue import JobQueue
from asyncqueue.server import tasks
from asyncqueue.server.answers import CONFLICT, NOT_FOUND, SUCCESS, TaskId, conflict, not_found
from asyncqueue.server.auth import WORKER_SCOPES, Scope, TokenAuth
from asyncqueue.server.claiming import claim_tasks, read_claimed, wait_for_news
from asyncqueue.server.errors import input_error
from asyncqueue.server.limits import DEFAULT_MAX_BODY_BYTES, capped_route_class
from asyncqueue.server.notify import EnqueueCounter
from asyncqueue.server.operator_routes import add_operator_routes
from asyncqueue.server.schemas import (
    ClaimBody,
    CompleteBody,
    ExchangeBody,
    FailBody,
    HeartbeatBody,
    RenewBody,
    WaitBody,
    WorkerHeartbeatBody,
)
from asyncqueue.storage.base import WorkerRecord
from asyncqueue.validation import job_type_name


def create_router(
    queue: JobQueue,
    auth: TokenAuth,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    counter: EnqueueCounter | None = None,
) -> APIRouter:
    """The API's routes under ``/api``, for ``app.include_router``.

    Args:
        queue: the queue served (opened on first use if it is not open).
        auth: who may call what (see :class:`~asyncqueue.server.TokenAuth`).
        max_body_bytes: larger request bodies are answered 413.
        counter: the enqueue counter that long polls wait on (default: a new one).

    Returns:
        The router.
    """
    router = APIRouter(prefix="/api", route_class=capped_route_class(max_body_bytes))
    counter = counter if counter is not None else EnqueueCounter(queue)
    _add_worker_routes(router, queue, auth, counter)
    _add_batch_routes(router, queue, auth, counter)
    add_operator_routes(router, queue, auth)
    return router


def _job_types(names: Sequence[str] | None) -> tuple[str, ...] | None:
    """Validated job types; None or an empty list mean any type."""
    if not names:
        return None
    try:
        return tuple(job_type_name(name) for name in names)
    except ValidationError as exc:
        raise input_error(exc, "body", {"job_type": "task_types"}) from None


def _add_worker_routes(
    router: APIRouter, queue: JobQueue, auth: TokenAuth, counter: EnqueueCounter
) -> None:
    worker = Depends(auth.requires(WORKER_SCOPES))

    @router.get("/health", tags=["health"])
    async def health() -> Response:
        """Whether the queue can be read: 200 healthy, else 503. Needs no token."""
        try:
            await queue.get_queue_stats()
        except Exception as exc:  # noqa: BLE001 - any failure to read means unhealthy
            return JSONResponse(
                {"status": "unhealthy", "detail": f"{type(exc).__name__}: {exc}"},
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        return JSONResponse({"status": "healthy"})

    @router.post(
        "/tasks/claim",
        tags=["worker"],
        responses={404: {"description": "Nothing to claim (without `limit`): body `null`."}},
    )
    async def claim(body: ClaimBody, request: Request, scope: Scope = worker) -> Response:
        """Claim the next task (priority 1 first, then oldest), or up to ``limit`` tasks.

        Without ``limit``: the task, or 404 with body ``null`` when there is none. With
        ``limit``: ``{"tasks": [...]}``, possibly empty. ``wait`` long-polls up to that many
        seconds for a task to come.
        """
        claimed = await claim_tasks(
            queue,
            counter,
            worker_id=body.worker_id,
            limit=body.limit or 1,
            job_types=_job_types(body.task_types),
            wait=body.wait or 0.0,
            lease_seconds=body.lease_seconds,
            disconnected=request.is_disconnected,
        )
        objects = [tasks.task_object(job) for job in claimed]
        if body.limit is not None:
            return JSONResponse({"tasks": objects})
        if not objects:
            return JSONResponse(None, status_code=status.HTTP_404_NOT_FOUND)
        return JSONResponse(objects[0])

    @router.post("/tasks/{task_id}/complete", tags=["worker"], responses=NOT_FOUND | CONFLICT)
    async def complete(task_id: TaskId, body: CompleteBody, scope: Scope = worker) -> Response:
        """Record the success of a held task, with its result; a repeat answers 200 again."""
        result_json = None
        if body.result is not None:
            try:
                result_json = tasks.encode_task_result(body.result, queue.max_result_bytes)
            except ValidationError as exc:
                raise input_error(exc, "body") from None
        return await _report(
            task_id, "complete", body.worker_id, body.lease_token, None, result_json
        )

    @router.post("/tasks/{task_id}/fail", tags=["worker"], responses=NOT_FOUND | CONFLICT)
    async def fail(task_id: TaskId, body: FailBody, scope: Scope = worker) -> Response:
        """Record a failed attempt of a held task: retried after backoff, or failed."""
        return await _report(task_id, "fail", body.worker_id, body.lease_token, body.error, None)

    async def _report(
        task_id: int,
        report: tasks.Report,
        worker_id: str,
        token: str | None,
        error: str | None,
        result_json: str | None,
    ) -> Response:
        try:
            await tasks.report(
                queue,
                task_id,
                report,
                worker_id=worker_id,
                token=token,
                error=error,
                result_json=result_json,
            )
        except tasks.TaskNotFound:
            return not_found(task_id)
        except tasks.LeaseConflict as exc:
            return conflict(exc)
        return JSONResponse(SUCCESS)

    @router.post("/tasks/{task_id}/heartbeat", tags=["worker"], responses=NOT_FOUND | CONFLICT)
    async def heartbeat(task_id: TaskId, body: HeartbeatBody, scope: Scope = worker) -> Response:
        """Extend the lease of a held task by ``lease_seconds`` (default: the queue's)."""
        try:
            job = await tasks.heartbeat(
                queue,
                task_id,
                worker_id=body.worker_id,
                token=body.lease_token,
                seconds=body.lease_seconds,
            )
        except tasks.TaskNotFound:
            return not_found(task_id)
        except tasks.LeaseConflict as exc:
            return conflict(exc)
        return JSONResponse(
            {
                "lease_expires_at": tasks.iso(job.lease_expires_at),
                "status": job.status.value,
                "cancelled": False,
            }
        )

    @router.post("/workers/heartbeat", tags=["worker"])
    async def worker_heartbeat(body: WorkerHeartbeatBody, scope: Scope = worker) -> Response:
        """Register a remote worker or refresh its heartbeat (the server's clock stamps it)."""
        await queue.record_worker(
            WorkerRecord(
                worker_id=body.worker_id,
                host=body.host,
                pid=body.pid,
                started_at=body.started_at,
                last_heartbeat=queue.clock.now(),
                heartbeat_interval=body.heartbeat_interval,
                jobs_processed=body.jobs_processed,
                jobs_failed=body.jobs_failed,
            )
        )
        return JSONResponse(
            {"status": "success", "state": "running", "lease_seconds": queue.lease_seconds}
        )

    @router.delete("/workers/{worker_id}", tags=["worker"])
    async def remove_worker(
        worker_id: Annotated[str, Path(max_length=255)], scope: Scope = worker
    ) -> Response:
        """Forget a worker (on its clean stop)."""
        await queue.remove_worker(worker_id)
        return JSONResponse(SUCCESS)


def _add_batch_routes(
    router: APIRouter, queue: JobQueue, auth: TokenAuth, counter: EnqueueCounter
) -> None:
    worker = Depends(auth.requires(WORKER_SCOPES))

    @router.post("/tasks/exchange", tags=["worker"])
    async def exchange(body: ExchangeBody, scope: Scope = worker) -> Response:
        """Report outcomes of held tasks and claim more, in one transaction.

        Each outcome is fenced by its lease token. ``applied`` lists the ids whose outcome
        applied now or had been applied by the same lease before.
        """
        claim = body.claim
        job_types = None if claim is None else _job_types(claim.task_types)
        counter.attach()
        # Read before the claim, so that a task enqueued after it wakes the next wait.
        seq = counter.seq
        outcomes = [
            tasks.Outcome(item.id, item.lease_token, item.outcome, item.result, item.error)
            for item in body.finished
        ]
        applied, claimed = await tasks.exchange(
            queue,
            outcomes,
            worker_id=body.worker_id,
            limit=0 if claim is None else claim.limit,
            strategy="priority" if claim is None else claim.strategy,
            job_types=job_types,
            holding=None
            if body.holding is None
            else [(item.id, item.lease_token) for item in body.holding],
        )
        jobs = await read_claimed(queue, claimed)
        return JSONResponse(
            {
                "applied": applied,
                "tasks": [tasks.task_object(job) for job in jobs],
                "lease_seconds": queue.lease_seconds,
                "seq": seq,
            }
        )

    @router.post("/tasks/renew", tags=["worker"])
    async def renew(body: RenewBody, scope: Scope = worker) -> Response:
        """Extend several leases; ``held`` lists the ids still held."""
        leases = [tasks.lease(item.id, item.lease_token, body.worker_id) for item in body.leases]
        held = await queue.renew_leases(leases)
        expires = queue.clock.now() + queue.lease_seconds
        return JSONResponse(
            {
                "held": sorted(held),
                "lease_expires_at": tasks.iso_timestamp(expires),
                "lease_seconds": queue.lease_seconds,
            }
        )

    @router.post("/tasks/wait", tags=["worker"])
    async def wait(body: WaitBody, scope: Scope = worker) -> Response:
        """Wait up to ``timeout`` seconds for an enqueue notification after ``since``, or
        for a task of ``task_types`` to come due. Claims nothing.

        Returns ``{"seq": n, "due": d}``, at once if ``n`` differs from ``since``; ``d``
        says a task came due. A worker claims when either moved, and otherwise waits again.
        """
        job_types = _job_types(body.task_types)
        await queue.open()
        seq, due = await wait_for_news(
            queue, counter, since=body.since, seconds=body.timeout, job_types=job_types
        )
        return JSONResponse({"seq": seq, "due": due})
