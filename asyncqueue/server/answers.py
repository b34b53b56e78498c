"""JSON answers the routes share: success, 404, 409, task lists, the task id parameter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Path, status
from fastapi.responses import JSONResponse

from asyncqueue.job import Job, JobStatus
from asyncqueue.server import tasks
from asyncqueue.server.auth import Scope
from asyncqueue.server.schemas import MAX_INT64

TaskId = Annotated[int, Path(ge=0, le=MAX_INT64, description="The task's id.")]
SUCCESS = {"status": "success"}
#: OpenAPI descriptions of the routes' 404 and 409 answers.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No task has this id."}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The worker does not hold the task (any more); nothing changed."}
}


def conflict(exc: tasks.LeaseConflict) -> JSONResponse:
    """409: the worker does not hold the task; the task's status, and whether cancelled."""
    job_status = exc.job.status
    return JSONResponse(
        {
            "detail": exc.detail,
            "status": job_status.value,
            "cancelled": job_status is JobStatus.CANCELLED,
        },
        status_code=status.HTTP_409_CONFLICT,
    )


def not_found(task_id: int) -> JSONResponse:
    """404 for a task id no task has."""
    return JSONResponse({"detail": f"no task {task_id}"}, status_code=status.HTTP_404_NOT_FOUND)


def task_list(jobs: Sequence[Job], scope: Scope) -> JSONResponse:
    """``{"tasks": [...]}``, lease tokens hidden from read-only tokens."""
    show = scope is not Scope.READ
    return JSONResponse({"tasks": [tasks.task_object(job, show_lease_token=show) for job in jobs]})
