"""The history rows (``EventRow``) of each kind of transition, built in Python.

Every backend announces committed transitions to its ``event_sink`` with these, and writes
the rare ones to its history table from them.
"""

from __future__ import annotations

from collections.abc import Sequence

from asyncqueue.job import ClaimedJob, JobId, JobStatus
from asyncqueue.storage.base import EventRow, FinishedJob
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
