"""The history rows (``EventRow``) of each kind of transition, built in Python.

Every backend announces committed transitions to its ``event_sink`` with these, and writes
the rare ones to its history table from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncqueue.job import ClaimedJob, JobId, JobStatus
from asyncqueue.storage.base import EventRow, FinishedJob, Strategy
from asyncqueue.validation import NewJob

#: The history event each outcome of a held job records.
OUTCOME_EVENTS: dict[JobStatus, str] = {
    JobStatus.COMPLETED: "completed",
    JobStatus.RETRY_SCHEDULED: "retry_scheduled",
    JobStatus.FAILED: "failed",
    JobStatus.PENDING: "released",
}


def enqueued_events(batch: Sequence[tuple[NewJob, float]], ids: Sequence[JobId]) -> list[EventRow]:
    """The "enqueued" rows of the jobs an enqueue created (duplicates have none)."""
    return [
        (int(job_id), "enqueued", "pending", at, None, job.job_type, None, job.run_at, None)
        for (job, at), job_id in zip(batch, ids, strict=True)
        if job_id.created
    ]


def finished_events(
    finished: Sequence[FinishedJob], applied: set[int], now: float, worker_id: str | None
) -> list[EventRow]:
    """The rows of the outcomes that applied (their lease was still held)."""
    return [
        (
            f.job_id,
            OUTCOME_EVENTS[f.status],
            f.status.value,
            now,
            worker_id,
            f.job_type,
            f.error,
            f.run_at if f.status is JobStatus.RETRY_SCHEDULED else None,
            f.duration,
        )
        for f in finished
        if f.job_id in applied
    ]


def claimed_events(
    claimed: Sequence[ClaimedJob], now: float, worker_id: str | None
) -> list[EventRow]:
    """The "claimed" rows of newly claimed jobs."""
    return [
        (job.id, "claimed", "processing", now, worker_id, job.job_type, None, None, None)
        for job in claimed
    ]


def recovered_events(found: Sequence[Sequence[Any]], now: float) -> list[EventRow]:
    """The "recovered" rows of ``(id, job_type, worker_id, status, error)`` rows."""
    return [(r[0], "recovered", r[3], now, r[2], r[1], r[4], None, None) for r in found]


def sort_claimed(claimed: list[ClaimedJob], strategy: Strategy) -> None:
    """Put jobs a claim returned (in no guaranteed order) in the order they start: priority
    then id, or id (lifo: newest first). Which jobs the claim took followed due time."""
    if len(claimed) > 1:
        if strategy == "priority":
            claimed.sort(key=_priority_order)
        else:
            claimed.sort(key=_id_order, reverse=strategy == "lifo")


def _priority_order(job: ClaimedJob) -> tuple[int, int]:
    return (job.priority, job.id)


def _id_order(job: ClaimedJob) -> int:
    return job.id
