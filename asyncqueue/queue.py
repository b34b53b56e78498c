"""JobQueue: the public verbs. Validates input, decides outcomes, logs; storage stores."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

from asyncqueue.clock import Clock, SystemClock
from asyncqueue.config import QueueSettings, redacted, resolve_settings
from asyncqueue.errors import (
    AsyncQueueError,
    DatabaseError,
    QueueClosedError,
    ValidationError,
    ValidationTypeError,
)
from asyncqueue.events import EventHub, JobEvent
from asyncqueue.job import ClaimedJob, FailedGroup, Job, JobId, JobStatus, QueueStats
from asyncqueue.logs import get_logger
from asyncqueue.metrics import (
    DEFAULT_WINDOW_SECONDS,
    QueueMetrics,
    ThroughputBucket,
    build_metrics,
    check_window,
)
from asyncqueue.protocol import predicted_failure
from asyncqueue.storage.base import (
    ClaimRequest,
    FinishedJob,
    JobStorage,
    Lease,
    Strategy,
    WorkerRecord,
)
from asyncqueue.storage.maintenance import (
    BackupResult,
    CheckpointResult,
    RestoreResult,
    VacuumResult,
    WorkerInfo,
)
from asyncqueue.storage.select import storage_for
from asyncqueue.timebounds import MAX_SETTING_SECONDS, MIN_TIMESTAMP, capped, stored_datetime
from asyncqueue.validation import (
    DEFAULT_PRIORITY,
    NewJob,
    build_new_job,
    build_new_jobs,
    job_type_name,
    storable_error,
)


class JobQueue:
    """A durable job queue in one SQLite file, or in a PostgreSQL database.

    Settings not given here come from ``QUEUE_*`` environment variables, then defaults
    (see the README's configuration table). Construction validates settings without touching
    the file; the queue opens itself on first use, or explicitly with ``await queue.open()``
    or ``async with JobQueue(path) as queue:``.

    Args:
        path: the database file (``QUEUE_DB_PATH``, default ``./asyncqueue.db``), or a
            ``postgresql://`` (``postgres://``) URL, which selects the PostgreSQL backend
            (``pip install 'asyncqueue[postgres]'``).
        retry_base_delay: seconds before the first retry (``QUEUE_RETRY_BASE_DELAY``, 1.0).
        retry_backoff_multiplier: growth per retry (``QUEUE_RETRY_MULTIPLIER``, 2.0).
        retry_max_delay: longest backoff in seconds (``QUEUE_RETRY_MAX_DELAY``, 3600).
        retry_jitter: draw each delay from [delay/2, delay] (``QUEUE_RETRY_JITTER``, off).
        job_timeout_minutes: lease length; a job not renewed for this long is stale
            (``QUEUE_JOB_TIMEOUT_MINUTES``, 30; fractions accepted).
        max_retries: default retries after the first attempt (``QUEUE_MAX_RETRIES``, 3).
        cleanup_after_days: default age for ``cleanup_old_jobs`` (``QUEUE_CLEANUP_AFTER_DAYS``, 7).
        synchronous: ``"NORMAL"`` (default) or ``"FULL"`` durability (``QUEUE_SYNCHRONOUS``).
        busy_timeout: seconds SQLite waits for another process's lock (``QUEUE_BUSY_TIMEOUT``, 5).
        busy_retries: tries before :class:`DatabaseBusyError`; a write waits at most about
            ``busy_timeout * busy_retries`` plus at most 0.25 s of backoff per retry (default 3).
        read_connections: size of the read pool (default 2).
        max_metadata_bytes: largest metadata JSON accepted (``QUEUE_MAX_METADATA_BYTES``, 64 KiB).
        record_history: record every transition in the ``job_events`` table, in the same
            transaction (``QUEUE_RECORD_HISTORY``, on); see ``get_job_history``.
        schema: PostgreSQL only: the schema holding the queue's tables, so the queue can
            share the application's database (``QUEUE_DB_SCHEMA``, ``asyncqueue``).
        pool_size: PostgreSQL only: most pooled connections (``QUEUE_DB_POOL_SIZE``, 10).
        listen: PostgreSQL only: wake workers through LISTEN/NOTIFY (``QUEUE_DB_LISTEN``,
            on); turn off behind PgBouncer's transaction pooling, workers then poll.
        clock: time source for every time-dependent decision (default: the system clock).

    Raises:
        ConfigurationError: a setting or environment variable is invalid.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        retry_base_delay: float | None = None,
        retry_backoff_multiplier: float | None = None,
        retry_max_delay: float | None = None,
        retry_jitter: bool | None = None,
        job_timeout_minutes: float | None = None,
        max_retries: int | None = None,
        cleanup_after_days: float | None = None,
        synchronous: str | None = None,
        busy_timeout: float | None = None,
        busy_retries: int | None = None,
        read_connections: int | None = None,
        max_metadata_bytes: int | None = None,
        record_history: bool | None = None,
        schema: str | None = None,
        pool_size: int | None = None,
        listen: bool | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings: QueueSettings = resolve_settings(
            {
                "path": path,
                "retry_base_delay": retry_base_delay,
                "retry_backoff_multiplier": retry_backoff_multiplier,
                "retry_max_delay": retry_max_delay,
                "retry_jitter": retry_jitter,
                "job_timeout_minutes": job_timeout_minutes,
                "max_retries": max_retries,
                "cleanup_after_days": cleanup_after_days,
                "synchronous": synchronous,
                "busy_timeout": busy_timeout,
                "busy_retries": busy_retries,
                "read_connections": read_connections,
                "max_metadata_bytes": max_metadata_bytes,
                "record_history": record_history,
                "schema": schema,
                "pool_size": pool_size,
                "listen": listen,
            }
        )
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._events = EventHub()
        self._storage: JobStorage = storage_for(self.settings)
        self._storage.event_sink = self._events
        self._state = "new"  # new -> open -> closed
        self._open_lock: asyncio.Lock | None = None
        self._enqueue_listeners: set[Callable[[], None]] = set()
        self._change_watch: Callable[[], None] | None = None
        self._log = get_logger("asyncqueue.queue")
        #: When a claim for these job types (None: any) last came back short or failed
        #: (see wait_for_work).
        self._last_claims: dict[tuple[str, ...] | None, float] = {}

    @property
    def path(self) -> str:
        """The database file, or the PostgreSQL URL."""
        return self.settings.path

    @property
    def location(self) -> str:
        """The database file, or the PostgreSQL URL with its password masked: what messages
        and logs show."""
        return redacted(self.settings.path)

    @property
    def backend(self) -> str:
        """``"postgres"`` or ``"sqlite"``."""
        return "postgres" if self.settings.is_postgres else "sqlite"

    @property
    def lease_seconds(self) -> float:
        """How long a claim holds a job without renewal: ``job_timeout_minutes`` in seconds."""
        return self.settings.lease_seconds

    @property
    def max_result_bytes(self) -> int:
        """The largest result a job may keep, in bytes of JSON (``max_metadata_bytes``)."""
        return self.settings.max_metadata_bytes

    @property
    def is_open(self) -> bool:
        """Whether the queue is open."""
        return self._state == "open"

    def __repr__(self) -> str:
        return f"JobQueue({redacted(self.path)!r}, state={self._state})"

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> Self:
        """Open the database, creating or migrating its schema. Idempotent.

        Raises:
            DatabaseOpenError: the path is not a usable queue database (names the path).
            SchemaVersionError: the file was written by a newer asyncqueue.
            QueueClosedError: the queue was closed.
        """
        if self._state == "open":
            return self
        if self._state == "closed":
            raise QueueClosedError(f"the queue at {self.location} is closed")
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._state == "new":
                await self._storage.open()
                self._state = "open"
                self._log.debug("queue.opened", path=self.location)
        return self

    async def close(self) -> None:
        """Commit pending writes and close. Idempotent; the queue cannot be reopened."""
        if self._state == "closed":
            return
        was_open = self._state == "open"
        self._state = "closed"
        if self._change_watch is not None:
            self._change_watch()
            self._change_watch = None
        if was_open:
            await self._storage.close()
            self._log.debug("queue.closed", path=self.location)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _ready(self) -> JobStorage:
        if self._state != "open":
            await self.open()
        return self._storage

    # -- enqueue -----------------------------------------------------------------------

    async def enqueue(
        self,
        job_type: str | Enum,
        target_id: str,
        *,
        priority: int = DEFAULT_PRIORITY,
        max_retries: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        delay: float | timedelta | None = None,
        run_at: datetime | None = None,
        connection: Any = None,
    ) -> JobId:
        """Add a job, unless an active job with the same ``(job_type, target_id)`` exists.

        Returns once the job is committed. On an idle queue under ``synchronous="NORMAL"``,
        a job with metadata of up to 2,048 JSON characters is committed on the event loop's
        own thread (a WAL append of about 60 µs, shorter than a hop to the writer's thread);
        otherwise, and whenever another process holds the write lock, the writer's thread
        commits it.

        Args:
            job_type: a str, or a str-valued Enum member (its value is stored).
            target_id: what the job acts on (1-255 characters).
            priority: 1 (highest) to 10 (lowest).
            max_retries: retries after the first attempt (default: the queue's).
            metadata: a JSON-serialisable dict handed to ``process_job``.
            delay: seconds (or a timedelta) before the job may run; the job's run time must
                not pass 9999-12-31T23:59:59Z.
            run_at: a timezone-aware datetime before which the job may not run, from
                0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z (a time past means now).
            connection: PostgreSQL only: an asyncpg connection of the application's. The
                job is inserted on it, inside its open transaction: it exists if and only
                if that transaction commits (workers are woken then).

        Returns:
            The job's id as a :class:`JobId` (an int). ``.created`` is False when an active
            duplicate existed and its id was returned instead; nothing was inserted then.

        Raises:
            ValidationError: a bad argument (a ``ValueError``; wrong types are also
                ``TypeError``). Nothing is written.
            ConfigurationError: ``connection`` given to a SQLite queue.
        """
        job = self._new_job(
            job_type=job_type,
            target_id=target_id,
            priority=priority,
            max_retries=max_retries,
            metadata=metadata,
            delay=delay,
            run_at=run_at,
        )
        storage = self._storage if self._state == "open" else await self._ready()
        if connection is not None:
            return (await self._insert_in(connection, [job]))[0]
        job_id = await storage.insert_job(job, self.clock.now())
        self._enqueued(job, job_id)
        if job_id.created:
            self._notify_enqueued()
        return job_id

    async def enqueue_many(
        self, items: Iterable[Mapping[str, Any]], *, connection: Any = None
    ) -> list[JobId]:
        """Add many jobs in one transaction: all of them or, on bad input, none.

        Each item is a mapping with ``enqueue``'s parameter names. Duplicate prevention
        applies per item, also between items of the same call. ``connection`` (PostgreSQL
        only) inserts them in the application's transaction, as for :meth:`enqueue`.

        Returns:
            One :class:`JobId` per item, in order.

        Raises:
            ValidationError: an item is invalid (its index is in the message); nothing is
                written.
        """
        if isinstance(items, Mapping | str | bytes) or not isinstance(items, Iterable):
            raise ValidationTypeError(
                f"enqueue_many takes an iterable of mappings, got {type(items).__name__}"
            )
        if self._state == "closed":
            raise QueueClosedError(f"the queue at {self.location} is closed")
        new_jobs = build_new_jobs(
            items,
            default_max_retries=self.settings.max_retries,
            max_metadata_bytes=self.settings.max_metadata_bytes,
            now=self.clock.now(),
        )
        if not new_jobs:
            return []
        if connection is not None:
            await self._ready()
            return await self._insert_in(connection, new_jobs)
        return await self._insert(new_jobs)

    async def _insert_in(self, connection: Any, new_jobs: list[NewJob]) -> list[JobId]:
        ids = await self._storage.insert_jobs_in(connection, new_jobs, self.clock.now())
        for job, job_id in zip(new_jobs, ids, strict=True):
            self._enqueued(job, job_id)
        return ids

    def _new_job(self, **arguments: Any) -> NewJob:
        return build_new_job(
            **arguments,
            default_max_retries=self.settings.max_retries,
            max_metadata_bytes=self.settings.max_metadata_bytes,
            now=self.clock.now(),
        )

    async def _insert(self, new_jobs: list[NewJob]) -> list[JobId]:
        storage = self._storage if self._state == "open" else await self._ready()
        ids = await storage.insert_jobs(new_jobs, self.clock.now())
        if self._logs_debug():
            for job, job_id in zip(new_jobs, ids, strict=True):
                self._enqueued(job, job_id)
        if any(job_id.created for job_id in ids):
            self._notify_enqueued()
        return ids

    def _logs_debug(self) -> bool:
        """False when the logger is known to drop debug events (a per-job loop saved)."""
        # Looked up on the class: structlog's generic BoundLogger turns any attribute read
        # on an instance into a logging method, which would log this question as an event.
        if getattr(type(self._log), "is_enabled_for", None) is None:
            return True
        return bool(self._log.is_enabled_for(logging.DEBUG))

    def _enqueued(self, job: NewJob, job_id: JobId) -> None:
        self._log.debug(
            "job.enqueued" if job_id.created else "job.duplicate",
            job_id=int(job_id),
            job_type=job.job_type,
            target_id=job.target_id,
            priority=job.priority,
        )

    def _notify_enqueued(self) -> None:
        for listener in self._enqueue_listeners:
            listener()

    def add_enqueue_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever new work may be there (workers use it to wake).

        That is: this queue object enqueued or released a job, or another connection (most
        often another process) committed to the database file.
        """
        if not self._enqueue_listeners and self._state == "open":
            self._change_watch = self._storage.watch_changes(self._notify_enqueued)
        self._enqueue_listeners.add(listener)

    def remove_enqueue_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``."""
        self._enqueue_listeners.discard(listener)
        if not self._enqueue_listeners and self._change_watch is not None:
            self._change_watch()
            self._change_watch = None

    # -- reads -------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        storage = await self._ready()
        return await storage.get_job(_job_id(job_id))

    async def get_jobs(self, job_ids: Iterable[int]) -> list[Job]:
        """The jobs with these ids, in the order given, read in one query.

        Unknown ids are left out (a repeated id gives its job once per mention).
        """
        wanted = [_job_id(job_id) for job_id in job_ids]
        if not wanted:
            return []
        storage = await self._ready()
        found = {job.id: job for job in await storage.get_jobs(sorted(set(wanted)))}
        return [found[job_id] for job_id in wanted if job_id in found]

    async def get_queue_stats(self) -> QueueStats:
        """Counts by status and the number of live workers."""
        storage = await self._ready()
        return await storage.queue_stats(self.clock.now())

    async def get_metrics(self, window: float = DEFAULT_WINDOW_SECONDS) -> QueueMetrics:
        """Throughput, success and failure rates, processing-time percentiles by job type,
        oldest pending age and depth by type and status, over the last ``window`` seconds.

        Computed from the jobs table, so it works with history off and covers every
        process using the file. The cost grows with the jobs completed in the window.
        A window longer than the span of storable times (0001 to 9999) is shortened to it,
        and covers every job.
        """
        seconds = check_window(window)
        storage = await self._ready()
        return build_metrics(await storage.read_metrics(self.clock.now(), seconds))

    async def get_failed_jobs(self, limit: int = 100) -> list[Job]:
        """Failed (dead-letter) jobs, newest first."""
        return await self.list_jobs(status=JobStatus.FAILED, limit=limit)

    async def list_jobs(
        self,
        *,
        status: str | JobStatus | Iterable[str | JobStatus] | None = None,
        job_type: str | Enum | None = None,
        limit: int = 100,
        target_id: str | None = None,
        error_message: str | None = None,
        before_id: int | None = None,
    ) -> list[Job]:
        """Jobs filtered by status (one or several), type, target and error, newest first.

        Pages through any number of jobs at the cost of one page each: pass the smallest id
        of a page as ``before_id`` to read the next (a keyset cursor, never an offset).

        Args:
            status: one status or several (none given: every status).
            job_type: only jobs of this type.
            limit: at most this many jobs (1 to 2**31 - 1).
            target_id: only jobs acting on this target.
            error_message: only jobs whose last error is exactly this (``""``: none).
            before_id: only jobs with an id below this one.

        Raises:
            ValueError: an unknown status, a limit below 1, or a bad filter.
        """
        statuses = _statuses(status)
        type_name = None if job_type is None else job_type_name(job_type)
        _listing_limit(limit)
        _filter_text("target_id", target_id)
        _filter_text("error_message", error_message)
        before = None if before_id is None else _job_id(before_id)
        storage = await self._ready()
        return await storage.list_jobs(
            statuses,
            type_name,
            limit,
            target_id=target_id,
            error_message=error_message,
            before_id=before,
        )

    async def get_failed_groups(self, limit: int = 100) -> list[FailedGroup]:
        """Failed jobs grouped by error message and job type, largest group first.

        Reads every failed job once (the dead letter); retry a group with
        ``list_jobs(status="failed", job_type=..., error_message=...)`` and :meth:`retry_job`.

        Raises:
            ValueError: a limit below 1.
        """
        _listing_limit(limit)
        storage = await self._ready()
        return [
            FailedGroup(error, job_type, count, newest, _utc_or_none(at))
            for error, job_type, count, newest, at in await storage.failed_groups(limit)
        ]

    async def get_throughput(
        self, window: float = 3600.0, buckets: int = 60
    ) -> list[ThroughputBucket]:
        """Jobs completed and failed per time bucket over the last ``window`` seconds.

        Every bucket is returned, oldest first, empty ones included; the last one ends now.
        Counted from the jobs table, like :meth:`get_metrics`: completions cost no table
        lookup, failures one each.

        Raises:
            ValueError: a window that is not a positive number, or buckets not in 1..1000.
        """
        seconds = check_window(window)
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= 1000:
            raise ValidationError(f"buckets must be an int from 1 to 1000, got {buckets!r}")
        storage = await self._ready()
        length = seconds / buckets
        since = self.clock.now() - seconds
        completed, failed = [0] * buckets, [0] * buckets
        for b, c, f in await storage.finished_by_bucket(since, length):
            # A job that ended at this very moment falls on the last bucket's far edge.
            b = min(b, buckets - 1)
            completed[b] += c
            failed[b] += f
        return [
            ThroughputBucket(stored_datetime(since + b * length), completed[b], failed[b])
            for b in range(buckets)
        ]

    # -- history and events ------------------------------------------------------------

    async def get_job_history(self, job_id: int) -> list[JobEvent]:
        """Every recorded transition of a job, oldest first (empty with history off)."""
        storage = await self._ready()
        return [JobEvent.from_row(row) for row in await storage.get_job_history(_job_id(job_id))]

    def subscribe(self, callback: Callable[[JobEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after each transition this queue object commits.

        Returns a function that unsubscribes. Events of other processes are not seen here
        (read their history from the database). Callbacks run in the event loop; an
        exception in one is logged and ignored.
        """
        return self._events.subscribe(callback)

    def events(
        self, max_buffer: int = 10_000
    ) -> AbstractAsyncContextManager[AsyncIterator[JobEvent]]:
        """Transitions this queue object commits, as an async iterator::

            async with queue.events() as events:
                async for event in events:
                    ...

        At most ``max_buffer`` unread events are kept; more are dropped with a warning.
        """
        return self._events.stream(max_buffer)

    # -- maintenance -------------------------------------------------------------------

    async def recover_stale_jobs(self) -> int:
        """Take back jobs whose lease expired (their worker crashed or hung).

        Each goes back to pending with the attempt counted, or to failed if its retries are
        spent. Running workers call this periodically on their own.

        Returns:
            How many jobs were recovered.
        """
        storage = await self._ready()
        recovered = await storage.recover_stale_jobs(self.clock.now())
        if any(job.status is JobStatus.PENDING for job in recovered):
            self._notify_enqueued()
        for job in recovered:
            self._log.warning(
                "job.recovered",
                job_id=job.id,
                job_type=job.job_type,
                worker_id=job.worker_id,
                status=job.status.value,
            )
        return len(recovered)

    async def cleanup_old_jobs(self, days: float | None = None) -> int:
        """Delete completed and cancelled jobs finished more than ``days`` ago.

        Failed jobs stay until retried or removed. ``days`` defaults to
        ``cleanup_after_days``; fractions are accepted. A ``days`` reaching back before the
        earliest storable time (0001-01-01), infinity included, deletes nothing: no job
        finished that long ago.

        Returns:
            How many jobs were deleted.
        """
        if days is None:
            days = self.settings.cleanup_after_days
        if isinstance(days, bool) or not isinstance(days, int | float) or not days >= 0:
            raise ValidationError(f"days must be a number >= 0, got {days!r}")
        storage = await self._ready()
        cutoff = _cleanup_cutoff(self.clock.now(), days)
        deleted = 0 if cutoff is None else await storage.delete_finished_jobs(cutoff)
        self._log.info("queue.cleaned", deleted=deleted, older_than_days=days)
        return deleted

    async def cancel_job(self, job_id: int) -> bool:
        """Cancel a pending or retry-scheduled job. False for any other job or an unknown id."""
        storage = await self._ready()
        cancelled = await storage.cancel_job(_job_id(job_id), self.clock.now())
        if cancelled:
            self._log.info("job.cancelled", job_id=int(job_id))
        return cancelled

    async def retry_job(self, job_id: int) -> bool:
        """Move a failed or cancelled job back to pending now, with ``retry_count`` reset.

        Returns False, changing nothing, if the job is in another status, unknown, or an
        active job holds the same ``(job_type, target_id)``.
        """
        storage = await self._ready()
        retried = await storage.retry_job(_job_id(job_id), self.clock.now())
        if retried:
            self._notify_enqueued()
            self._log.info("job.retried", job_id=int(job_id))
        return retried

    # -- used by QueueWorker -----------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        *,
        limit: int,
        strategy: Strategy = "priority",
        job_types: tuple[str, ...] | None = None,
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` due jobs under fresh leases (for workers)."""
        _, claimed = await self.finish_and_claim(
            (), worker_id=worker_id, limit=limit, strategy=strategy, job_types=job_types
        )
        return claimed

    def outcome(
        self,
        job: ClaimedJob,
        error: str | None,
        duration: float | None = None,
        *,
        result_json: str | None = None,
    ) -> FinishedJob:
        """Decide a held job's next status: completed, retry after backoff, or failed.

        ``duration`` (seconds the attempt ran) is only passed on to event subscribers;
        ``result_json`` (a completed attempt's result, as JSON) is stored with the job.
        """
        status, run_at = JobStatus.COMPLETED, None
        if error is not None:
            error = storable_error(error)
            result_json = None
            status = predicted_failure(job)
            if status is JobStatus.RETRY_SCHEDULED:
                delay = self.settings.retry_policy.delay_for(job.retry_count)
                run_at = capped(self.clock.now() + delay)
        return FinishedJob(
            job.id, job.lease_token, status, run_at, error, job.job_type, duration, result_json
        )

    def released(self, job: ClaimedJob) -> FinishedJob:
        """The outcome that gives a held job back to pending without counting the attempt."""
        return FinishedJob(
            job.id, job.lease_token, JobStatus.PENDING, self.clock.now(), job_type=job.job_type
        )

    async def finish_and_claim(
        self,
        finished: Sequence[FinishedJob],
        *,
        worker_id: str,
        limit: int,
        strategy: Strategy = "priority",
        job_types: tuple[str, ...] | None = None,
        brief: bool = False,
    ) -> tuple[set[int], list[ClaimedJob]]:
        """Record outcomes of held jobs and claim up to ``limit`` more, in one transaction.

        Every outcome applies only while its lease is still held. Returns the ids whose
        outcome applied and the newly claimed jobs. ``brief`` marks a small exchange (an
        idle worker's first claim) that may be committed on the event loop's own thread,
        saving the hop to the writer's: a few hundred microseconds of latency.
        """
        storage = await self._ready()
        now = self.clock.now()
        claim = (
            ClaimRequest(
                worker_id=worker_id,
                limit=limit,
                strategy=strategy,
                job_types=job_types,
                now=now,
                lease_expires_at=capped(now + self.settings.lease_seconds),
            )
            if limit > 0
            else None
        )
        try:
            applied, claimed = await storage.finish_and_claim(
                finished, claim, now, worker_id or None, brief=brief
            )
        except BaseException:
            if limit > 0:
                # After a failed claim a job already due is not news: wait_for_work lets
                # the worker back off instead of claiming again at once.
                self._note_claim(job_types, now)
            raise
        if limit > 0 and len(claimed) < limit:
            # A claim that came back short took every due job it could: one still due
            # was passed over (another transaction holds it). A full claim says nothing
            # about the jobs it did not reach.
            self._note_claim(job_types, now)
        if any(f.status is JobStatus.PENDING and f.job_id in applied for f in finished):
            self._notify_enqueued()
        return applied, claimed

    async def _finish_one(self, job: ClaimedJob, outcome: FinishedJob) -> bool:
        applied, _ = await self.finish_and_claim((outcome,), worker_id=job.worker_id or "", limit=0)
        return outcome.job_id in applied

    async def complete(self, job: ClaimedJob) -> bool:
        """Record success of a held job. False if its lease was lost (result discarded)."""
        return await self._finish_one(job, self.outcome(job, None))

    async def fail_attempt(self, job: ClaimedJob, error: str) -> JobStatus | None:
        """Record a failed attempt: retry after backoff while retries remain, else fail.

        Returns:
            The job's new status, or None if the lease was lost (the result is discarded).
        """
        outcome = self.outcome(job, error)
        return outcome.status if await self._finish_one(job, outcome) else None

    async def release(self, job: ClaimedJob) -> bool:
        """Give a held job back to pending without counting the attempt."""
        return await self._finish_one(job, self.released(job))

    async def renew_leases(
        self, jobs: Iterable[ClaimedJob], *, lease_seconds: float | None = None
    ) -> set[int]:
        """Extend the leases of held jobs; return the ids still held.

        Args:
            jobs: the held jobs.
            lease_seconds: the new lease length from now (default: :attr:`lease_seconds`);
                the HTTP API lets a remote worker ask for its own.

        Raises:
            ValidationError: ``lease_seconds`` is not a number > 0 (at most 100 years).
        """
        seconds = (
            self.settings.lease_seconds if lease_seconds is None else _lease_length(lease_seconds)
        )
        storage = await self._ready()
        now = self.clock.now()
        leases = [Lease(job.id, job.lease_token) for job in jobs]
        return await storage.renew_leases(leases, capped(now + seconds), now)

    async def wait_for_work(self, seconds: float, job_types: tuple[str, ...] | None) -> None:
        """Return once a job of these types is due: an idle worker's wait, claiming nothing.

        It reads the earliest due time of a ready job (a read: no lock, no write) at once,
        then again when that time comes and every ``seconds`` (less up to a tenth, so
        workers started together spread out), which finds jobs made due without a
        notification: a retry or a recovered lease in another process, rows written by
        hand. A job that was already due when a claim for these types (or for any type)
        last came back short, passed over by it (another transaction held it), counts again
        only ``seconds`` after that claim: such a job costs one claim per ``seconds``, not a
        claim loop. A failed read sleeps ``seconds`` and returns: the worker's claim
        retries and reports the error.

        A local worker is woken earlier by its enqueue listener (see
        :meth:`add_enqueue_listener`), which it races with this wait.
        """
        storage = await self._ready()
        while True:
            try:
                due = await _finished_even_if_cancelled(storage.earliest_ready(job_types))
            except QueueClosedError:
                raise
            except AsyncQueueError as exc:
                self._log.warning("queue.wait_read_failed", error=str(exc))
                await self.clock.sleep(seconds)
                return
            now = self.clock.now()
            if due is not None and due <= now:
                last = self._last_claim(job_types)
                if due > last or now >= last + seconds:
                    return
                pause = last + seconds - now  # a claim since it came due passed it over
            else:
                pause = seconds * (1.0 - POLL_JITTER * random.random())
                if due is not None:
                    pause = min(pause, due - now)
            await self.clock.sleep(pause)

    def _note_claim(self, job_types: tuple[str, ...] | None, now: float) -> None:
        key = None if job_types is None else tuple(job_types)
        # Re-inserted, so the dict's order is the order of last use.
        self._last_claims[key] = max(now, self._last_claims.pop(key, now))
        # Remote workers name their own type lists: keep the most recent few.
        if len(self._last_claims) > _CLAIMS_REMEMBERED:
            del self._last_claims[next(iter(self._last_claims))]

    def _last_claim(self, job_types: tuple[str, ...] | None) -> float:
        """When a claim that would have taken a due job of these types, had it been free,
        last started."""
        never = float("-inf")
        key = None if job_types is None else tuple(job_types)
        return max(self._last_claims.get(key, never), self._last_claims.get(None, never))

    async def record_worker(self, worker: WorkerRecord) -> None:
        """Register or heartbeat a worker, and prune workers no longer alive."""
        storage = await self._ready()
        await storage.heartbeat_worker(worker)
        await storage.prune_workers(self.clock.now())

    async def remove_worker(self, worker_id: str) -> None:
        """Delete a worker's row (on its clean stop)."""
        storage = await self._ready()
        await storage.unregister_worker(worker_id)

    # -- database maintenance (CLI) ---------------------------------------------------
    #
    # Integrity check, checkpoint, vacuum, analyze, backup and restore run on a connection
    # of their own (never the writer), and need no open queue: they work on the file.

    async def exists(self) -> bool:
        """Whether the queue's database exists (the SQLite file; on PostgreSQL, the queue's
        tables in its schema), looked up without creating it.

        Raises:
            DatabaseOpenError: the PostgreSQL server cannot be reached.
        """
        return await self._storage.exists()

    async def _maintained(self) -> JobStorage:
        if self._state == "closed":
            raise QueueClosedError(f"the queue at {self.location} is closed")
        # A SQLite file is maintained on connections of its own; a server's schema through
        # the queue's pool.
        return await self._ready() if self.settings.is_postgres else self._storage

    async def check_integrity(self) -> list[str]:
        """Run SQLite's ``PRAGMA integrity_check`` and check the file is an asyncqueue one.

        A sound asyncqueue file is also checked for rows holding a time outside the
        storable range (0001-01-01 to 9999-12-31T23:59:59Z): reads show those clamped.

        Returns:
            The problems found, one line each; an empty list when the database is sound.

        Raises:
            DatabaseOpenError: there is no database file at the queue's path.
        """
        storage = await self._maintained()
        return await storage.integrity_problems()

    async def checkpoint(self) -> CheckpointResult:
        """Copy the write-ahead log into the database file and truncate it.

        Waits up to ``busy_timeout`` for other connections; ``busy`` in the result says the
        checkpoint could not finish because one kept reading or writing.

        Raises:
            DatabaseOpenError: no asyncqueue database at the queue's path.
        """
        storage = await self._maintained()
        return await storage.checkpoint()

    async def vacuum(self) -> VacuumResult:
        """Rebuild the database file without its free pages (``VACUUM``).

        It holds the write lock while it runs: workers' writes wait meanwhile, so run it
        when the queue is quiet.

        Raises:
            DatabaseOpenError: no asyncqueue database at the queue's path.
            DatabaseBusyError: another connection kept the write lock past ``busy_timeout``.
        """
        storage = await self._maintained()
        result = await storage.vacuum()
        self._log.info("queue.vacuumed", before=result.bytes_before, after=result.bytes_after)
        return result

    async def analyze(self) -> None:
        """Refresh the query planner's statistics (``ANALYZE``).

        Raises:
            DatabaseOpenError: no asyncqueue database at the queue's path.
        """
        storage = await self._maintained()
        await storage.analyze()

    async def backup(
        self, destination: str | os.PathLike[str], *, overwrite: bool = False
    ) -> BackupResult:
        """Write a consistent copy of the live database to ``destination``.

        Uses SQLite's online backup API from a connection of its own: the copy is the
        state of one moment, taken while workers keep committing, and holds every job
        committed before the call. The result is a self-contained SQLite file.

        Raises:
            DatabaseError: ``destination`` exists (without ``overwrite=True``), is the
                queue's own file, or cannot be written.
            DatabaseOpenError: no asyncqueue database at the queue's path.
        """
        storage = await self._maintained()
        result = await storage.backup(os.fspath(destination), overwrite=overwrite)
        self._log.info("queue.backed_up", destination=result.path, bytes=result.bytes)
        return result

    async def restore(
        self, source: str | os.PathLike[str], *, force: bool = False
    ) -> RestoreResult:
        """Replace the queue's content with a backup's, taken by :meth:`backup`.

        The backup must pass ``PRAGMA integrity_check`` and be an asyncqueue database. It is
        written into the live file through SQLite's backup API (never a file copy under a
        live WAL), so other processes see the old content or the new one. An older schema
        is migrated the next time a queue opens the file.

        Args:
            source: the backup file.
            force: restore even while workers are active. Their running jobs and leases
                vanish with the old content; restart them afterwards.

        Raises:
            DatabaseError: workers are active (without ``force``), or the backup is
                missing, damaged, not an asyncqueue database, or the queue's own file.
        """
        storage = await self._maintained()
        if self.settings.is_postgres:
            # Not a verb of this backend (pg_restore is): say that, whoever is active.
            return await storage.restore(os.fspath(source))
        active = (await self.get_queue_stats()).active_workers
        if active and not force:
            raise DatabaseError(
                f"refusing to restore while {active} worker(s) are active on the queue; "
                "stop them first, or force the restore",
                self.location,
            )
        result = await storage.restore(os.fspath(source))
        self._log.info("queue.restored", source=result.source, jobs=result.jobs, forced=force)
        return result

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker, alive or not, oldest first.

        A worker is alive while its last heartbeat is younger than three heartbeat
        intervals; rows of dead workers stay until a live worker prunes them.
        """
        await self._ready()
        storage = await self._maintained()
        return await storage.list_workers(self.clock.now())

    async def count_jobs_by_type(self) -> dict[str, dict[str, int]]:
        """Job counts by job type, then by status (statuses without jobs left out)."""
        await self._ready()
        storage = await self._maintained()
        return await storage.counts_by_type()

    async def retry_failed_jobs(self, job_type: str | Enum | None = None) -> tuple[int, int]:
        """Move every failed job (of ``job_type`` only, if given) back to pending.

        Each job is retried as by :meth:`retry_job`; a job whose ``(job_type, target_id)``
        an active job holds stays failed.

        Returns:
            ``(retried, skipped)``: how many jobs went back to pending, how many stayed.
        """
        type_name = None if job_type is None else job_type_name(job_type)
        await self._ready()
        storage = await self._maintained()
        ids = await storage.failed_job_ids(type_name)
        retried = 0
        batch = 256  # retries in flight at once: they share the writer's group commits
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            outcomes = await asyncio.gather(*(self.retry_job(job_id) for job_id in chunk))
            retried += sum(outcomes)
        return retried, len(ids) - retried


def _cleanup_cutoff(now: float, days: float) -> float | None:
    """The finish time cleanup deletes before; None when that is before every storable time."""
    # Compared before multiplying: an int too large for a float must not overflow.
    if days > (now - MIN_TIMESTAMP) / 86400.0:
        return None
    return now - days * 86400.0


def _utc_or_none(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else stored_datetime(timestamp)


T = TypeVar("T")

#: The share of ``poll_interval`` an idle worker's reads may come early by (see
#: ``JobQueue.wait_for_work``): workers started at once spread out instead of reading in step.
POLL_JITTER = 0.1


async def _finished_even_if_cancelled(read: Awaitable[T]) -> T:
    """Await ``read`` in a task of its own that runs to its end even if the caller is
    cancelled: cancelling a PostgreSQL query midway costs a cancel request on a new
    connection, and an idle worker's read is cancelled every time the worker is woken."""
    task = asyncio.ensure_future(read)
    # A cancelled caller never looks at the outcome; retrieving it keeps asyncio quiet.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return await asyncio.shield(task)


#: Distinct job-type lists whose last claim time a queue keeps (see ``wait_for_work``).
_CLAIMS_REMEMBERED = 64

#: Largest page a listing reads: PostgreSQL's LIMIT parameter is a 32-bit int here.
_MAX_LIMIT = 2**31 - 1

#: Job ids are signed 64-bit integers in both backends.
_MAX_JOB_ID = 2**63 - 1


def _job_id(job_id: object) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise ValidationTypeError(f"job id must be an int, got {type(job_id).__name__}")
    if not -_MAX_JOB_ID - 1 <= job_id <= _MAX_JOB_ID:
        raise ValidationError(f"job id must fit in 64 bits (at most {_MAX_JOB_ID}), got {job_id}")
    return int(job_id)


def _lease_length(seconds: object) -> float:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_SETTING_SECONDS
    ):
        raise ValidationError(
            f"lease_seconds must be a number > 0 and at most {MAX_SETTING_SECONDS:.0f} "
            f"(100 years), got {seconds!r}"
        )
    return float(seconds)


def _listing_limit(limit: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _MAX_LIMIT:
        raise ValidationError(f"limit must be an int from 1 to {_MAX_LIMIT}, got {limit!r}")


def _filter_text(name: str, value: object) -> None:
    """A text filter: a str either database can compare (a stored value never holds NUL
    or a lone surrogate, so neither can match)."""
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationTypeError(f"{name} must be a str, got {type(value).__name__}")
    if "\x00" in value:
        raise ValidationError(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{name} must be valid Unicode (no lone surrogates)") from None


def _statuses(
    status: str | JobStatus | Iterable[str | JobStatus] | None,
) -> list[JobStatus] | None:
    """The statuses to list; None (every status) for None or none given."""
    if status is None:
        return None
    raw = [status] if isinstance(status, str) else list(status)
    if not raw:
        return None
    try:
        return [JobStatus(s) for s in raw]
    except ValueError:
        valid = ", ".join(s.value for s in JobStatus)
        raise ValidationError(f"unknown status in {status!r}; valid: {valid}") from None
