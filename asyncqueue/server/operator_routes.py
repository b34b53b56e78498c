"""The operator's routes: enqueue, list and inspect tasks, retry, cancel, stats, workers,
metrics. Reading takes a read (or admin) token; changing jobs outside a lease, admin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse, Response

from asyncqueue.errors import ValidationError
from asyncqueue.job import JobStatus
from asyncqueue.queue import JobQueue
from asyncqueue.server import tasks
from asyncqueue.server.answers import NOT_FOUND, SUCCESS, TaskId, not_found, task_list
from asyncqueue.server.auth import ADMIN_SCOPES, READ_SCOPES, TASK_READ_SCOPES, Scope, TokenAuth
from asyncqueue.server.errors import input_error
from asyncqueue.server.schemas import EnqueueBody
from asyncqueue.validation import DEFAULT_PRIORITY

#: Names of enqueue's arguments as the API calls them, for error locations.
_ENQUEUE_NAMES = {"job_type": "type", "metadata": "params"}


def add_operator_routes(router: APIRouter, queue: JobQueue, auth: TokenAuth) -> None:
    """Add the operator's routes: enqueue, task lists, one task, retry, cancel, stats,
    workers and metrics. ``/tasks/failed`` comes before ``/tasks/{task_id}``, which would
    otherwise take it (and answer 422, failed being no id).
    """
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
        return task_list(jobs, scope)

    @router.get("/tasks/failed", tags=["operator"])
    async def failed_tasks(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        scope: Scope = read,
    ) -> Response:
        """Failed (dead-letter) tasks, newest first."""
        jobs = await queue.get_failed_jobs(limit=limit)
        return task_list(jobs, scope)

    @router.get("/tasks/{task_id}", tags=["worker", "operator"], responses=NOT_FOUND)
    async def get_task(
        task_id: TaskId,
        scope: Scope = Depends(auth.requires(TASK_READ_SCOPES)),  # noqa: B008
    ) -> Response:
        """One task."""
        job = await queue.get_job(task_id)
        if job is None:
            return not_found(task_id)
        return JSONResponse(tasks.task_object(job, show_lease_token=scope is not Scope.READ))

    @router.post("/tasks/{task_id}/retry", tags=["operator"], responses=NOT_FOUND)
    async def retry(task_id: TaskId, scope: Scope = admin) -> Response:
        """Move a failed or cancelled task back to pending (409 for another status)."""
        return await _operate(task_id, queue.retry_job, "retried")

    @router.post("/tasks/{task_id}/cancel", tags=["operator"], responses=NOT_FOUND)
    async def cancel(task_id: TaskId, scope: Scope = admin) -> Response:
        """Cancel a pending or retry-scheduled task (409 for another status)."""
        return await _operate(task_id, queue.cancel_job, "cancelled")

    async def _operate(task_id: int, verb: Any, done: str) -> Response:
        job = await queue.get_job(task_id)
        if job is None:
            return not_found(task_id)
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
