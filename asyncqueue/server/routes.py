"""The HTTP API as an ``APIRouter``: the seed's worker routes, the batching routes of
``RemoteQueue``, and the operator's routes. Every route calls ``JobQueue``'s public verbs.

Include it in your own FastAPI app with ``app.include_router(create_router(queue, auth))``;
your app's lifespan must then open the queue and take back expired leases (see
``asyncqueue.server.lease_sweeper``), as ``create_app`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response

from asyncqueue.errors import ValidationError
from asyncqueue.job import Job, JobStatus
from asyncqueue.queue import JobQueue
from asyncqueue.server import tasks
from asyncqueue.server.auth import (
    ADMIN_SCOPES,
    READ_SCOPES,
    TASK_READ_SCOPES,
    WORKER_SCOPES,
    Scope,
    TokenAuth,
)
from asyncqueue.server.claiming import claim_tasks, read_claimed
from asyncqueue.server.errors import input_error
from asyncqueue.server.limits import DEFAULT_MAX_BODY_BYTES, capped_route_class
from asyncqueue.server.notify import EnqueueCounter
from asyncqueue.server.schemas import (
    MAX_INT64,
    ClaimBody,
    CompleteBody,
    EnqueueBody,
    ExchangeBody,
    FailBody,
    HeartbeatBody,
    RenewBody,
    WaitBody,
    WorkerHeartbeatBody,
)
from asyncqueue.storage.base import WorkerRecord
from asyncqueue.validation import DEFAULT_PRIORITY, job_type_name

TaskId = Annotated[int, Path(ge=0, le=MAX_INT64, description="The task's id.")]
SUCCESS = {"status": "success"}
#: Names of enqueue's arguments as the API calls them, for error locations.
_ENQUEUE_NAMES = {"job_type": "type", "metadata": "params"}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No task has this id."}}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The worker does not hold the task (any more); nothing changed."}
}


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
    _add_operator_routes(router, queue, auth)
    return router


def _job_types(names: Sequence[str] | None, location: str) -> tuple[str, ...] | None:
    """Validated job types; None or an empty list mean any type."""
    if not names:
        return None
    try:
        return tuple(job_type_name(name) for name in names)
    except ValidationError as exc:
        raise input_error(exc, location, {"job_type": "task_types"}) from None


def _conflict(exc: tasks.LeaseConflict) -> JSONResponse:
    job_status = exc.job.status
    return JSONResponse(
        {
            "detail": exc.detail,
            "status": job_status.value,
            "cancelled": job_status is JobStatus.CANCELLED,
        },
        status_code=status.HTTP_409_CONFLICT,
    )


def _not_found(task_id: int) -> JSONResponse:
    return JSONResponse({"detail": f"no task {task_id}"}, status_code=status.HTTP_404_NOT_FOUND)


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
            job_types=_job_types(body.task_types, "body"),
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

    @router.post("/tasks/{task_id}/complete", tags=["worker"], responses=_NOT_FOUND | _CONFLICT)
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

    @router.post("/tasks/{task_id}/fail", tags=["worker"], responses=_NOT_FOUND | _CONFLICT)
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
            return _not_found(task_id)
        except tasks.LeaseConflict as exc:
            return _conflict(exc)
        return JSONResponse(SUCCESS)

    @router.post("/tasks/{task_id}/heartbeat", tags=["worker"], responses=_NOT_FOUND | _CONFLICT)
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
            return _not_found(task_id)
        except tasks.LeaseConflict as exc:
            return _conflict(exc)
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
        return JSONResponse({"status": "success", "state": "running"})

    @router.delete("/workers/{worker_id}", tags=["worker"])
    async def remove_worker(
        worker_id: Annotated[str, Path(max_length=255)], scope: Scope = worker
    ) -> Response:
        """Forget a worker (on its clean stop)."""
        await queue.remove_worker(worker_id)
        return JSONResponse(SUCCESS)


def _task_list(jobs: Sequence[Job], scope: Scope) -> JSONResponse:
    show = scope is not Scope.READ
    return JSONResponse({"tasks": [tasks.task_object(job, show_lease_token=show) for job in jobs]})


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
        job_types = None if claim is None else _job_types(claim.task_types, "body")
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
        """Wait up to ``timeout`` seconds for an enqueue notification after ``since``.

        Returns ``{"seq": n}`` at once if ``n`` differs from ``since``. Claims nothing.
        """
        _job_types(body.task_types, "body")
        await queue.open()
        return JSONResponse({"seq": await counter.wait(body.since, body.timeout)})


def _add_operator_routes(router: APIRouter, queue: JobQueue, auth: TokenAuth) -> None:
    read = Depends(auth.requires(READ_SCOPES))
    admin = Depends(auth.requires(ADMIN_SCOPES))

    @router.post(
        "/tasks",
        tags=["operator"],
        status_code=status.HTTP_201_CREATED,
        responses={200: {"description": "An active task of this type and target existed."}},
    )
    async def enqueue(body: EnqueueBody, scope: Scope = admin) -> Response:
        """Add a task: 201 and the task, or 200 and the active duplicate (same id)."""
        try:
            job_id = await queue.enqueue(
                body.type,
                body.target_id,
                priority=DEFAULT_PRIORITY if body.priority is None else body.priority,
                max_retries=body.max_retries,
                metadata=body.params,
                delay=body.delay,
                run_at=body.run_at,
            )
        except ValidationError as exc:
            raise input_error(exc, "body", _ENQUEUE_NAMES) from None
        job = await queue.get_job(job_id)
        assert job is not None  # enqueue returned its id; nothing deletes an active job
        return JSONResponse(
            tasks.task_object(job),
            status_code=status.HTTP_201_CREATED if job_id.created else status.HTTP_200_OK,
        )

    @router.get("/tasks", tags=["operator"])
    async def list_tasks(
        status_: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
        type_: Annotated[str | None, Query(alias="type", max_length=255)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        scope: Scope = read,
    ) -> Response:
        """Tasks filtered by status (repeatable) and type, newest first."""
        try:
            jobs = await queue.list_jobs(status=status_, job_type=type_, limit=limit)
        except ValidationError as exc:
            raise input_error(exc, "query", {"job_type": "type"}) from None
        return _task_list(jobs, scope)

    @router.get("/tasks/failed", tags=["operator"])
    async def failed_tasks(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        scope: Scope = read,
    ) -> Response:
        """Failed (dead-letter) tasks, newest first."""
        jobs = await queue.get_failed_jobs(limit=limit)
        return _task_list(jobs, scope)

    @router.get("/tasks/{task_id}", tags=["worker", "operator"], responses=_NOT_FOUND)
    async def get_task(
        task_id: TaskId,
        scope: Scope = Depends(auth.requires(TASK_READ_SCOPES)),  # noqa: B008
    ) -> Response:
        """One task."""
        job = await queue.get_job(task_id)
        if job is None:
            return _not_found(task_id)
        return JSONResponse(tasks.task_object(job, show_lease_token=scope is not Scope.READ))

    @router.post("/tasks/{task_id}/retry", tags=["operator"], responses=_NOT_FOUND)
    async def retry(task_id: TaskId, scope: Scope = admin) -> Response:
        """Move a failed or cancelled task back to pending (409 for another status)."""
        return await _operate(task_id, queue.retry_job, "retried")

    @router.post("/tasks/{task_id}/cancel", tags=["operator"], responses=_NOT_FOUND)
    async def cancel(task_id: TaskId, scope: Scope = admin) -> Response:
        """Cancel a pending or retry-scheduled task (409 for another status)."""
        return await _operate(task_id, queue.cancel_job, "cancelled")

    async def _operate(task_id: int, verb: Any, done: str) -> Response:
        job = await queue.get_job(task_id)
        if job is None:
            return _not_found(task_id)
        if not await verb(task_id):
            job = await queue.get_job(task_id) or job
            return JSONResponse(
                {"detail": f"task {task_id} cannot be {done}", "status": job.status.value},
                status_code=status.HTTP_409_CONFLICT,
            )
        return JSONResponse(SUCCESS)

    @router.get("/stats", tags=["operator"])
    async def stats(scope: Scope = read) -> Response:
        """Counts of tasks by status, and of live workers."""
        return JSONResponse((await queue.get_queue_stats()).to_dict())

    @router.get("/workers", tags=["operator"])
    async def workers(scope: Scope = read) -> Response:
        """Every registered worker, local or remote, alive or not."""
        return JSONResponse({"workers": [w.to_dict() for w in await queue.list_workers()]})

    @router.get("/metrics", tags=["operator"])
    async def metrics(
        window: Annotated[float, Query(gt=0, le=366 * 86400, allow_inf_nan=False)] = 300.0,
        scope: Scope = read,
    ) -> Response:
        """Throughput, outcome rates and processing times over the last ``window`` seconds."""
        return JSONResponse((await queue.get_metrics(window)).to_dict())
