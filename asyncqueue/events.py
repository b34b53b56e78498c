"""Job events: every transition of a job, for history and for in-process subscribers.

The same events are recorded in the database's ``job_events`` table (when history is on,
in the transaction that makes the transition) and announced to subscribers of the
``JobQueue`` object that made them, after the commit. Subscribing lets an app export
metrics (Prometheus, OpenTelemetry, ...) without asyncqueue depending on any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from asyncqueue.job import JobStatus
from asyncqueue.logs import get_logger
from asyncqueue.storage.base import EventRow
from asyncqueue.timebounds import stored_datetime


class JobEventType(StrEnum):
    """What happened to a job."""

    #: A new job was inserted (duplicates record nothing).
    ENQUEUED = "enqueued"
    #: A worker claimed it (its attempt starts).
    CLAIMED = "claimed"
    #: ``process_job`` returned True.
    COMPLETED = "completed"
    #: An attempt failed and a retry is scheduled (``error``, ``run_at``).
    RETRY_SCHEDULED = "retry_scheduled"
    #: The last attempt failed: the job is failed for good (``error``).
    FAILED = "failed"
    #: Given back to pending without counting the attempt (graceful stop).
    RELEASED = "released"
    #: Taken back from a worker whose lease expired; ``status`` says pending or failed.
    RECOVERED = "recovered"
    #: Cancelled before it ran.
    CANCELLED = "cancelled"
    #: Moved back to pending by ``retry_job``.
    RETRIED = "retried"


def _as_datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else stored_datetime(timestamp)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One transition of one job. Times are timezone-aware UTC datetimes.

    Times stored out of range read back clamped, as a :class:`~asyncqueue.job.Job`'s do.
    """

    job_id: int
    event: JobEventType
    status: JobStatus
    at: datetime
    worker_id: str | None = None
    job_type: str | None = None
    error: str | None = None
    run_at: datetime | None = None
    #: How long the attempt ran, on completed/retry_scheduled/failed events announced by the
    #: worker that ran it (not stored in the history).
    duration_seconds: float | None = None

    @classmethod
    def from_row(cls, row: EventRow) -> JobEvent:
        """Build an event from a storage row (times as epoch seconds)."""
        job_id, event, status, at, worker_id, job_type, error, run_at, duration = row
        return cls(
            job_id=job_id,
            event=JobEventType(event),
            status=JobStatus(status),
            at=stored_datetime(at),
            worker_id=worker_id,
            job_type=job_type,
            error=error,
            run_at=_as_datetime(run_at),
            duration_seconds=duration,
        )

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: times as ISO 8601 strings."""
        return {
            "job_id": self.job_id,
            "event": self.event.value,
            "status": self.status.value,
            "at": self.at.isoformat(),
            "worker_id": self.worker_id,
            "job_type": self.job_type,
            "error": self.error,
            "run_at": None if self.run_at is None else self.run_at.isoformat(),
            "duration_seconds": self.duration_seconds,
        }


EventCallback = Callable[[JobEvent], None]


class EventHub:
    """Hands each committed transition to the subscribers of one queue object."""

    def __init__(self) -> None:
        self._callbacks: list[EventCallback] = []
        self._log = get_logger("asyncqueue.events")

    @property
    def has_subscribers(self) -> bool:
        """Whether anyone listens (events are only built then)."""
        return bool(self._callbacks)

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for each transition; return a function that unsubscribes.

        Callbacks run in the event loop right after the commit; keep them quick. An
        exception in a callback is logged and does not reach the queue.
        """
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def publish(self, rows: Sequence[EventRow]) -> None:
        """Announce storage rows to every subscriber."""
        if not self._callbacks:
            return
        for row in rows:
            event = JobEvent.from_row(row)
            for callback in list(self._callbacks):
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - a subscriber must not break the queue
                    self._log.exception("events.subscriber_failed", job_id=event.job_id)

    @contextlib.asynccontextmanager
    async def stream(self, max_buffer: int = 10_000) -> AsyncIterator[AsyncIterator[JobEvent]]:
        """An async iterator of events while the context is open.

        Events beyond ``max_buffer`` unread ones are dropped (oldest kept) and counted in a
        warning, so a slow reader never makes the queue use unbounded memory.
        """
        buffer: asyncio.Queue[JobEvent] = asyncio.Queue(maxsize=max_buffer)
        dropped = 0

        def enqueue(event: JobEvent) -> None:
            nonlocal dropped
            try:
                buffer.put_nowait(event)
            except asyncio.QueueFull:
                dropped += 1
                if dropped == 1 or dropped % 1000 == 0:
                    self._log.warning("events.reader_too_slow", dropped=dropped)

        async def iterate() -> AsyncIterator[JobEvent]:
            while True:
                yield await buffer.get()

        unsubscribe = self.subscribe(enqueue)
        try:
            yield iterate()
        finally:
            unsubscribe()
