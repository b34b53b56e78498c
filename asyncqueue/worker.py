"""QueueWorker: claims jobs, runs ``process_job``, records outcomes, keeps its leases alive."""

from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import uuid
from collections.abc import Iterable
from enum import Enum
from typing import Any, get_args

import anyio

from asyncqueue.clock import Clock
from asyncqueue.errors import AsyncQueueError, ConfigurationError, QueueClosedError, WorkerError
from asyncqueue.job import ClaimedJob, JobStatus
from asyncqueue.logs import get_logger
from asyncqueue.queue import JobQueue
from asyncqueue.storage.base import Strategy, WorkerRecord
from asyncqueue.validation import job_type_name

#: Seconds running jobs get to finish after ``stop()`` before they are returned to pending.
DEFAULT_SHUTDOWN_GRACE_PERIOD = 30.0
#: Longest gap between heartbeats (and lease renewals, and stale-job sweeps).
MAX_HEARTBEAT_INTERVAL = 10.0

_inside_job: contextvars.ContextVar[bool] = contextvars.ContextVar("asyncqueue_job", default=False)


class QueueWorker:
    """Runs jobs from a :class:`JobQueue`. Subclass it and implement :meth:`process_job`.

    Args:
        queue: the queue to work on (opened on first use if it is not open yet).
        worker_id: a unique name (default: ``host-pid-random``).
        concurrency: jobs run at once by this worker.
        job_types: claim only these types (strs or str-valued Enum members); None for all.
        poll_interval: seconds between claim attempts while idle. An enqueue through the same
            ``JobQueue`` object wakes the worker at once; jobs enqueued by other processes,
            and delayed jobs coming due, are seen within this interval.
        strategy: ``"priority"`` (1 before 10, then oldest first), ``"fifo"`` or ``"lifo"``.
        shutdown_grace_period: seconds running jobs get after ``stop()`` (default 30).
        heartbeat_interval: seconds between heartbeats, lease renewals and stale sweeps
            (default: a third of the lease, at most 10 s). The worker counts as active while
            its last heartbeat is younger than three intervals.

    Raises:
        ConfigurationError: an argument is invalid.
    """

    def __init__(
        self,
        queue: JobQueue,
        *,
        worker_id: str | None = None,
        concurrency: int = 1,
        job_types: Iterable[str | Enum] | None = None,
        poll_interval: float = 1.0,
        strategy: Strategy = "priority",
        shutdown_grace_period: float = DEFAULT_SHUTDOWN_GRACE_PERIOD,
        heartbeat_interval: float | None = None,
    ) -> None:
        if not isinstance(queue, JobQueue):
            raise ConfigurationError(f"queue must be a JobQueue, got {type(queue).__name__}")
        self.queue = queue
        self.worker_id = _worker_id(worker_id)
        self.concurrency = _positive_int("concurrency", concurrency)
        self.job_types = _job_types(job_types)
        self.poll_interval = _positive_number("poll_interval", poll_interval)
        if strategy not in get_args(Strategy):
            raise ConfigurationError(
                f"strategy must be one of {get_args(Strategy)}, got {strategy!r}"
            )
        self.strategy: Strategy = strategy
        self.shutdown_grace_period = _non_negative_number(
            "shutdown_grace_period", shutdown_grace_period
        )
        lease = queue.settings.lease_seconds
        self.heartbeat_interval = (
            min(lease / 3, MAX_HEARTBEAT_INTERVAL)
            if heartbeat_interval is None
            else _positive_number("heartbeat_interval", heartbeat_interval)
        )
        self.jobs_processed = 0
        self.jobs_failed = 0
        self._held: dict[int, ClaimedJob] = {}
        self._wakeup = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stop_now = asyncio.Event()
        self._all_done = asyncio.Event()
        self._finished = asyncio.Event()
        self._grace: float | None = None
        self._active = False
        self._started_at = 0.0
        self._log = get_logger("asyncqueue.worker", worker_id=self.worker_id)

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        """Do the work of one job. Return True when it succeeded.

        Returning anything else, or raising, is a failed attempt: the job is retried with
        backoff while retries remain, then marked failed. Exceptions never stop the worker.
        """
        raise NotImplementedError("subclass QueueWorker and implement process_job")

    @property
    def clock(self) -> Clock:
        """The queue's clock, which every timer of the worker reads."""
        return self.queue.clock

    @property
    def is_running(self) -> bool:
        """Whether ``start()`` or ``run_until_idle()`` is running."""
        return self._active

    # -- public control ----------------------------------------------------------------

    async def start(self) -> None:
        """Run until :meth:`stop` is called or the task is cancelled.

        On cancellation, running jobs are cancelled and returned to pending at once.
        """
        await self._run(burst=False)

    async def run_until_idle(self) -> int:
        """Process every job that is due, then return how many jobs ran.

        Jobs that become due later (delays, retry backoff) are left for a later call: with a
        :class:`~asyncqueue.clock.ManualClock`, advance it and call again.
        """
        before = self.jobs_processed + self.jobs_failed
        await self._run(burst=True)
        return self.jobs_processed + self.jobs_failed - before

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop claiming, give running jobs ``grace_period`` seconds, return the rest to pending.

        Waits until the worker has stopped, unless called from inside ``process_job``.
        Idempotent; a second call with a shorter grace period shortens the wait.
        """
        grace = (
            self.shutdown_grace_period
            if grace_period is None
            else _non_negative_number("grace_period", grace_period)
        )
        self._grace = grace if self._grace is None else min(self._grace, grace)
        if self._stop_requested.is_set() and grace == 0:
            self._stop_now.set()
        self._stop_requested.set()
        self._wakeup.set()
        if self._active and not _inside_job.get():
            await self._finished.wait()

    # -- the run -----------------------------------------------------------------------

    async def _run(self, *, burst: bool) -> None:
        if self._active:
            raise WorkerError(f"worker {self.worker_id} is already running")
        self._active = True
        self._finished.clear()
        self._stop_requested.clear()
        self._stop_now.clear()
        self._grace = None
        try:
            await self.queue.open()
            self._started_at = self.clock.now()
            await self._heartbeat()
            await self.queue.recover_stale_jobs()
            self.queue.add_enqueue_listener(self._wakeup)
            self._log.info("worker.started", concurrency=self.concurrency, burst=burst)
            try:
                await self._supervise(burst)
            finally:
                self.queue.remove_enqueue_listener(self._wakeup)
                with anyio.CancelScope(shield=True):
                    await self._unregister()
        finally:
            self._active = False
            self._finished.set()

    async def _supervise(self, burst: bool) -> None:
        async with anyio.create_task_group() as side:
            side.start_soon(self._maintain, name=f"asyncqueue-maintenance:{self.worker_id}")
            try:
                async with anyio.create_task_group() as jobs:
                    await self._claim_loop(jobs, burst)
                    await self._drain()
                    jobs.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await self._release_held()
            side.cancel_scope.cancel()
        self._log.info("worker.stopped", processed=self.jobs_processed, failed=self.jobs_failed)

    async def _claim_loop(self, jobs: anyio.abc.TaskGroup, burst: bool) -> None:
        while not self._stop_requested.is_set():
            self._wakeup.clear()
            free = self.concurrency - len(self._held)
            claimed = await self._claim(free) if free > 0 else []
            for job in claimed:
                self._held[job.id] = job
                self._all_done.clear()
                jobs.start_soon(self._execute, job, name=f"asyncqueue-job:{job.id}")
            if claimed:
                continue
            if burst and not self._held:
                return
            await self._wait_for(self._wakeup, self.poll_interval)

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        # Shielded: a claim that committed must reach _held, or its jobs would sit in
        # processing until their lease expired.
        with anyio.CancelScope(shield=True):
            try:
                return await self.queue.claim(
                    self.worker_id, limit=limit, strategy=self.strategy, job_types=self.job_types
                )
            except QueueClosedError:
                raise
            except AsyncQueueError:
                self._log.exception("worker.claim_failed")
        return []

    async def _drain(self) -> None:
        if not self._held:
            return
        grace = self.shutdown_grace_period if self._grace is None else self._grace
        self._log.info("worker.draining", running=len(self._held), grace_period=grace)
        async with anyio.create_task_group() as race:

            async def stop_now() -> None:
                await self._stop_now.wait()
                race.cancel_scope.cancel()

            race.start_soon(stop_now)
            await self._wait_for(self._all_done, grace)
            race.cancel_scope.cancel()

    async def _wait_for(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for ``event`` or ``seconds`` on the clock; return whether it was set."""
        if event.is_set():
            return True
        async with anyio.create_task_group() as race:

            async def timer() -> None:
                await self.clock.sleep(seconds)
                race.cancel_scope.cancel()

            race.start_soon(timer)
            await event.wait()
            race.cancel_scope.cancel()
        return event.is_set()

    # -- one job -----------------------------------------------------------------------

    async def _execute(self, job: ClaimedJob) -> None:
        _inside_job.set(True)
        log = self._log.bind(job_id=job.id, job_type=job.job_type)
        log.debug("job.started", target_id=job.target_id)
        try:
            succeeded = await self.process_job(job.job_type, job.target_id, job.metadata)
        except Exception as exc:
            log.warning("job.attempt_failed", exc_info=True)
            error: str | None = f"{type(exc).__name__}: {exc}"
        else:
            error = (
                None
                if succeeded is True
                else (
                    "process_job returned False"
                    if succeeded is False
                    else f"process_job returned {succeeded!r} instead of True"
                )
            )
        with anyio.CancelScope(shield=True):
            await self._record(job, error, log)

    async def _record(self, job: ClaimedJob, error: str | None, log: Any) -> None:
        try:
            if error is None:
                applied = await self.queue.complete(job)
                status: JobStatus | None = JobStatus.COMPLETED if applied else None
            else:
                status = await self.queue.fail_attempt(job, error)
        except AsyncQueueError:
            # The lease will expire and stale recovery will take the job back.
            log.exception("job.outcome_not_recorded")
            status = None
        else:
            if status is None:
                log.warning("job.lease_lost", detail="result discarded; another run owns it")
            elif status is JobStatus.COMPLETED:
                self.jobs_processed += 1
                log.debug("job.completed")
            else:
                self.jobs_failed += 1
                log.info(f"job.{status.value}", error=error)
        self._forget(job)

    def _forget(self, job: ClaimedJob) -> None:
        self._held.pop(job.id, None)
        if not self._held:
            self._all_done.set()
        self._wakeup.set()

    async def _release_held(self) -> None:
        for job in list(self._held.values()):
            try:
                if await self.queue.release(job):
                    self._log.info("job.released", job_id=job.id, job_type=job.job_type)
            except AsyncQueueError:
                self._log.exception("job.release_failed", job_id=job.id)
            self._forget(job)

    # -- side work: heartbeat, lease renewal, stale sweep --------------------------------

    async def _maintain(self) -> None:
        while True:
            await self.clock.sleep(self.heartbeat_interval)
            try:
                await self._renew_leases()
                await self._heartbeat()
                await self.queue.recover_stale_jobs()
            except QueueClosedError:
                raise
            except AsyncQueueError:
                self._log.exception("worker.maintenance_failed")

    async def _renew_leases(self) -> None:
        held = list(self._held.values())
        if not held:
            return
        still_held = await self.queue.renew_leases(held)
        for job in held:
            if job.id not in still_held and job.id in self._held:
                self._log.warning("job.lease_lost", job_id=job.id, job_type=job.job_type)

    async def _heartbeat(self) -> None:
        await self.queue.record_worker(
            WorkerRecord(
                worker_id=self.worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=self._started_at,
                last_heartbeat=self.clock.now(),
                heartbeat_interval=self.heartbeat_interval,
                jobs_processed=self.jobs_processed,
                jobs_failed=self.jobs_failed,
            )
        )

    async def _unregister(self) -> None:
        try:
            await self.queue.remove_worker(self.worker_id)
        except AsyncQueueError:
            self._log.exception("worker.unregister_failed")


def _worker_id(worker_id: str | None) -> str:
    if worker_id is None:
        return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    if not isinstance(worker_id, str) or not worker_id.strip() or len(worker_id) > 255:
        raise ConfigurationError(
            f"worker_id must be a non-empty str of at most 255 characters, got {worker_id!r}"
        )
    return worker_id


def _job_types(job_types: Iterable[str | Enum] | None) -> tuple[str, ...] | None:
    if job_types is None:
        return None
    if isinstance(job_types, str | Enum):
        job_types = [job_types]
    try:
        names = tuple(dict.fromkeys(job_type_name(t) for t in job_types))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"job_types: {exc}") from exc
    if not names:
        raise ConfigurationError("job_types must name at least one type (or be None for all)")
    return names


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _positive_number(name: str, value: object) -> float:
    number = _non_negative_number(name, value)
    if number == 0:
        raise ConfigurationError(f"{name} must be > 0, got {value!r}")
    return number


def _non_negative_number(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < float("inf")
    ):
        raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)
