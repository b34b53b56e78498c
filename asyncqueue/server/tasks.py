"""Tasks as the HTTP API shows them, and the lease-fenced verbs of remote workers.

A *task* is a job under the seed API's names (``type``, ``params``, ``claimed_at``,
``error``). Everything here is built on ``JobQueue``'s public verbs: a remote worker's report
applies exactly as a local worker's would, fenced by the lease it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from asyncqueue.errors import ValidationError
from asyncqueue.job import ClaimedJob, Job, JobStatus
from asyncqueue.queue import JobQueue
from asyncqueue.storage.base import FinishedJob
from asyncqueue.validation import encode_result
from asyncqueue.worker import describe_exception

#: A report on a held task: it succeeded, or the attempt failed.
Report = Literal["complete", "fail"]

#: The statuses a report leaves a task in; a repeat of the report finds one of them.
_REPORTED: dict[str, frozenset[JobStatus]] = {
    "complete": frozenset({JobStatus.COMPLETED}),
    "fail": frozenset({JobStatus.RETRY_SCHEDULED, JobStatus.FAILED}),
}
#: Deepest nesting of a result kept: deeper values could not be encoded back in a response.
MAX_RESULT_DEPTH = 100


#: The job fields the seed API names otherwise; the rest keep their names.
_SEED_NAMES = {
    "job_type": "type",
    "metadata": "params",
    "started_at": "claimed_at",
    "error_message": "error",
}


def iso(moment: datetime | None) -> str | None:
    """An ISO 8601 UTC string, or None."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def iso_timestamp(seconds: float) -> str:
    """Epoch seconds as an ISO 8601 UTC string."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def task_object(job: Job, *, show_lease_token: bool = True) -> dict[str, Any]:
    """The task object every route returns for a job: ``Job.to_dict`` under the seed's
    names (``type``, ``params``, ``claimed_at``, ``error``).

    Args:
        job: the job.
        show_lease_token: include the lease token (worker and admin tokens only: a token
            lets its holder complete the task).
    """
    task = {_SEED_NAMES.get(name, name): value for name, value in job.to_dict().items()}
    if not show_lease_token:
        task["lease_token"] = None
    return task


def held_as(job: Job, token: str | None = None) -> ClaimedJob:
    """The :class:`ClaimedJob` a worker holding ``job`` has (its lease token by default)."""
    return ClaimedJob(
        id=job.id,
        job_type=job.job_type,
        target_id=job.target_id,
        metadata=job.metadata,
        priority=job.priority,
        retry_count=job.retry_count,
        max_retries=job.max_retries,
        lease_token=job.lease_token if token is None else token,  # type: ignore[arg-type]
        worker_id=job.worker_id,
    )


def lease(job_id: int, token: str, worker_id: str) -> ClaimedJob:
    """A :class:`ClaimedJob` naming only a lease: what ``renew_leases`` needs."""
    return ClaimedJob(job_id, "", "", {}, 0, 0, 0, token, worker_id)


def holds(job: Job, worker_id: str, token: str | None) -> bool:
    """Whether ``worker_id`` (with ``token``, when given) holds the job's lease."""
    return (
        job.status is JobStatus.PROCESSING
        and job.worker_id == worker_id
        and (token is None or token == job.lease_token)
    )


def is_repeat(job: Job, report: Report, worker_id: str, token: str | None) -> bool:
    """Whether the report was already applied: same worker, same lease, its outcome there."""
    return (
        job.status in _REPORTED[report]
        and job.worker_id == worker_id
        # A worker's report keeps its lease token on the job; a recovery of an expired
        # lease (which may fail the job too) clears it: that failure was no report.
        and job.lease_token is not None
        and (token is None or token == job.lease_token)
    )


def encode_task_result(value: Any, max_bytes: int) -> str:
    """A result as stored JSON text.

    Raises:
        ValidationError: the value is not JSON, nests deeper than ``MAX_RESULT_DEPTH``, or
            its JSON exceeds ``max_bytes``.
    """
    if _depth_exceeds(value, MAX_RESULT_DEPTH):
        raise ValidationError(f"result nests deeper than {MAX_RESULT_DEPTH} levels")
    return encode_result(value, max_bytes)


def _depth_exceeds(value: Any, limit: int) -> bool:
    level: list[Any] = [value]
    for _ in range(limit + 1):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return True


class TaskNotFound(Exception):
    """No task has the id."""


class LeaseConflict(Exception):
    """The worker does not hold the task (any more); ``job`` is the task as it is now."""

    def __init__(self, job: Job, detail: str) -> None:
        super().__init__(detail)
        self.job = job
        self.detail = detail


async def read_task(queue: JobQueue, task_id: int) -> Job:
    """The job, or :class:`TaskNotFound`."""
    job = await queue.get_job(task_id)
    if job is None:
        raise TaskNotFound(task_id)
    return job


async def report(
    queue: JobQueue,
    task_id: int,
    report: Report,
    *,
    worker_id: str,
    token: str | None,
    error: str | None = None,
    result_json: str | None = None,
) -> None:
    """Apply a worker's report on a task it holds, as a local worker's would apply.

    A failure follows the queue's retry policy. A repeat of a report already applied (its
    answer was lost) succeeds again without changing anything.

    Raises:
        TaskNotFound: no task has the id.
        LeaseConflict: the worker does not hold the task, and this is no repeat.
    """
    job = await read_task(queue, task_id)
    if holds(job, worker_id, token):
        outcome = queue.outcome(held_as(job), error, result_json=result_json)
        applied, _ = await queue.finish_and_claim([outcome], worker_id=worker_id, limit=0)
        if task_id in applied:
            return
        # The lease was lost between the read and the write (expired and recovered, or
        # the same report raced itself): judge the task as it is now.
        job = await read_task(queue, task_id)
    if not is_repeat(job, report, worker_id, token):
        raise LeaseConflict(job, _conflict_detail(job, worker_id))


async def heartbeat(
    queue: JobQueue, task_id: int, *, worker_id: str, token: str | None, seconds: float | None
) -> Job:
    """Extend the lease of a held task by ``seconds`` (default: the queue's lease) from now.

    Returns:
        The task after the renewal.

    Raises:
        TaskNotFound: no task has the id.
        LeaseConflict: the worker does not hold the task.
    """
    job = await read_task(queue, task_id)
    if holds(job, worker_id, token):
        held = await queue.renew_leases([held_as(job)], lease_seconds=seconds)
        job = await read_task(queue, task_id)
        if task_id in held:
            return job
    raise LeaseConflict(job, _conflict_detail(job, worker_id))


def _conflict_detail(job: Job, worker_id: str) -> str:
    if job.status is JobStatus.PROCESSING:
        return f"task {job.id} is not held by {worker_id} under this lease"
    return f"task {job.id} is {job.status.value}: {worker_id} holds no lease on it"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One outcome of an exchange, as the worker reported it."""

    id: int
    lease_token: str
    kind: Literal["completed", "failed", "released"]
    result: Any = None
    error: str | None = None


async def exchange(
    queue: JobQueue,
    outcomes: Iterable[Outcome],
    *,
    worker_id: str,
    limit: int,
    strategy: Literal["priority", "fifo", "lifo"] = "priority",
    job_types: tuple[str, ...] | None = None,
    holding: Iterable[tuple[int, str]] | None = None,
) -> tuple[list[int], list[ClaimedJob]]:
    """Apply outcomes fenced by their lease tokens and claim up to ``limit``, in one write.

    A result that cannot be stored makes its attempt a failure with the reason as its error,
    as it would for a local worker, rather than refusing the whole batch.

    ``holding`` (a client retrying after a lost answer) names every lease the worker knows
    it holds: its other jobs were claimed by an exchange whose answer never reached it, and
    go back to pending without spending an attempt (see :func:`release_unknown`).

    Returns:
        The ids whose outcome applied now or had been applied by the same lease before (a
        repeat after a lost answer), ascending; and the claimed jobs.
    """
    items: list[tuple[Outcome, str, str | None, str | None]] = []
    for item in outcomes:
        kind: str = item.kind
        error, result_json = item.error, None
        if kind == "completed" and item.result is not None:
            try:
                result_json = encode_task_result(item.result, queue.max_result_bytes)
            except ValidationError as exc:
                # What a local worker records when its job returns a result too large.
                kind, error = "failed", describe_exception(exc)
        items.append((item, kind, error, result_json))
    # Failures need the job's retry count for the retry policy, and both failures and
    # releases its type for the history: those jobs are read, all in one query.
    unread = [item.id for item, kind, _, _ in items if kind != "completed"]
    jobs = {job.id: job for job in await queue.get_jobs(unread)}
    finished: list[FinishedJob] = []
    expected: dict[int, tuple[str, frozenset[JobStatus]]] = {}
    for item, kind, error, result_json in items:
        outcome = _exchange_outcome(queue, item, kind, error, result_json, jobs.get(item.id))
        if outcome is not None:
            finished.append(outcome)
            expected[item.id] = (item.lease_token, _OUTCOME_STATUSES[kind])
    applied, claimed = await queue.finish_and_claim(
        finished, worker_id=worker_id, limit=limit, strategy=strategy, job_types=job_types
    )
    # An outcome not applied now may be the repeat of one applied before (a lost answer).
    missed = [job_id for job_id in expected if job_id not in applied]
    for job in await queue.get_jobs(missed):
        token, statuses = expected[job.id]
        if job.lease_token == token and job.status in statuses:
            applied.add(job.id)
    if holding is not None:
        known = {*holding, *((job.id, job.lease_token) for job in claimed)}
        await release_unknown(queue, worker_id, known)
    return sorted(applied), claimed


#: The most running jobs :func:`release_unknown` looks through.
MAX_RECONCILED_JOBS = 100_000


async def release_unknown(queue: JobQueue, worker_id: str, known: set[tuple[int, str]]) -> int:
    """Give back the worker's running jobs whose lease it does not know; return how many.

    Each release is fenced by the lease it found, so a job finished or taken back meanwhile
    is left alone.
    """
    running = await queue.list_jobs(status=JobStatus.PROCESSING, limit=MAX_RECONCILED_JOBS)
    lost = [
        held_as(job)
        for job in running
        if job.worker_id == worker_id
        and job.lease_token is not None
        and (job.id, job.lease_token) not in known
    ]
    if not lost:
        return 0
    applied, _ = await queue.finish_and_claim(
        [queue.released(job) for job in lost], worker_id=worker_id, limit=0
    )
    return len(applied)


#: The statuses an exchange outcome leaves a job in (a release clears the token: no repeat
#: of it is ever recognised, and none is needed, as the job is back to pending either way).
_OUTCOME_STATUSES: dict[str, frozenset[JobStatus]] = {
    "completed": frozenset({JobStatus.COMPLETED}),
    "failed": frozenset({JobStatus.RETRY_SCHEDULED, JobStatus.FAILED}),
    "released": frozenset(),
}


def _exchange_outcome(
    queue: JobQueue,
    item: Outcome,
    kind: str,
    error: str | None,
    result_json: str | None,
    job: Job | None,
) -> FinishedJob | None:
    """The outcome to apply; ``job`` is the job as read (needed unless it completed)."""
    if kind == "completed":
        return FinishedJob(item.id, item.lease_token, JobStatus.COMPLETED, result_json=result_json)
    if job is None:
        return None
    held = held_as(job, item.lease_token)
    if kind == "released":
        return queue.released(held)
    return queue.outcome(held, error if error is not None else "failed")
