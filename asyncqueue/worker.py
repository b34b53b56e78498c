"""QueueWorker: claims jobs, runs ``process_job``, records outcomes, keeps its leases alive."""

from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterable
from enum import Enum
from typing import Any, get_args

import anyio

from asyncqueue.clock import Clock
from asyncqueue.errors import (
    AsyncQueueError,
    ConfigurationError,
    QueueClosedError,
    RemoteAuthError,
    WorkerError,
)
from asyncqueue.job import ClaimedJob, JobResult, JobStatus
from asyncqueue.logs import get_logger
from asyncqueue.protocol import WorkerQueue
from asyncqueue.storage.base import FinishedJob, Strategy, WorkerRecord
from asyncqueue.validation import MAX_ERROR_CHARS, encode_result, job_type_name, storable_error

#: Seconds running jobs get to finish after ``stop()`` before they are returned to pending.
DEFAULT_SHUTDOWN_GRACE_PERIOD = 30.0
#: A worker claims ahead of its free slots (extra jobs, leased and renewed like running ones)
#: while its jobs take less than this on average, and holds about this much queued work
#: per runner: a job claimed ahead waits at most a few milliseconds for a slot.
CLAIM_AHEAD_MAX_JOB_SECONDS = 0.002
#: The most jobs a worker holds beyond its free slots. Each exchange with the database
#: costs a thread hop and a commit whatever its size, and a commit rewrites in the WAL every
#: page it touched, so very short jobs go fastest in large batches (measured, one worker
#: process: 20 a batch 22k jobs/s, 50 28k, 100 30k; on a slower day 100 gave 18-19k and
#: 400 gave 22-24k). The per-runner bound above still caps how long a job claimed ahead waits.
CLAIM_AHEAD_MAX_JOBS = 400
#: Longest gap between heartbeats (and lease renewals, and stale-job sweeps).
MAX_HEARTBEAT_INTERVAL = 10.0

_inside_job: contextvars.ContextVar[bool] = contextvars.ContextVar("asyncqueue_job", default=False)


class QueueWorker:
    """Runs jobs from a queue. Subclass it and implement :meth:`process_job`.

    The queue is a :class:`~asyncqueue.JobQueue` (the database, in this process) or a
    :class:`~asyncqueue.RemoteQueue` (a server's HTTP API): the same subclass runs on both.

    Args:
        queue: the queue to work on (opened on first use if it is not open yet).
        worker_id: a unique name (default: ``host-pid-random``).
        concurrency: jobs run at once by this worker.
        job_types: claim only these types (strs or str-valued Enum members); None for all.
        poll_interval: the longest an idle worker goes between two reads of the queue's
            earliest due time. An idle worker claims nothing: an enqueue through the same
            ``JobQueue``, a commit by another process (SQLite) or a notification
            (PostgreSQL) wakes it at once; it claims a delayed job or retry when it comes
            due, and other jobs that come due without notice within this interval.
        strategy: ``"priority"`` (1 before 10, then the job due longest first), ``"fifo"``
            (due longest first, any priority) or ``"lifo"`` (due most recently first).
        shutdown_grace_period: seconds running jobs get after ``stop()`` (default 30).
        heartbeat_interval: seconds between heartbeats, lease renewals and stale sweeps
            (default: a third of the lease, at most 10 s). The worker counts as active while
            its last heartbeat is younger than three intervals.
        max_runs: stop gracefully once this many jobs have run (completed or failed
            attempts); None (default) for no limit.
        max_consecutive_errors: stop once this many errors came with no successful job
            between them: failed attempts, and failed exchanges or heartbeats with the
            queue (a remote server unreachable past its reconnect time). ``start()`` and
            ``run_until_idle()`` then raise :class:`WorkerError`. None (default): no limit.

    Raises:
        ConfigurationError: an argument is invalid.
    """

    def __init__(
        self,
        queue: WorkerQueue,
        *,
        worker_id: str | None = None,
        concurrency: int = 1,
        job_types: Iterable[str | Enum] | None = None,
        poll_interval: float = 1.0,
        strategy: Strategy = "priority",
        shutdown_grace_period: float = DEFAULT_SHUTDOWN_GRACE_PERIOD,
        heartbeat_interval: float | None = None,
        max_runs: int | None = None,
        max_consecutive_errors: int | None = None,
    ) -> None:
        if not isinstance(queue, WorkerQueue):
            raise ConfigurationError(
                f"queue must be a JobQueue or a RemoteQueue, got {type(queue).__name__}"
            )
        self.queue: WorkerQueue = queue
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
        lease = queue.lease_seconds
        #: Whether the interval follows the lease (recomputed once a remote queue has
        #: learnt the server's lease from the first heartbeat).
        self._heartbeat_follows_lease = heartbeat_interval is None
        self.heartbeat_interval = (
            min(lease / 3, MAX_HEARTBEAT_INTERVAL)
            if heartbeat_interval is None
            else _positive_number("heartbeat_interval", heartbeat_interval)
        )
        if self.heartbeat_interval >= lease:
            # Leases are renewed on the heartbeat: a longer interval would let stale recovery
            # take jobs from this live worker.
            raise ConfigurationError(
                f"heartbeat_interval ({self.heartbeat_interval:g}s) must be shorter than the "
                f"lease (job_timeout_minutes = {lease:g}s); a third of it is recommended"
            )
        self.max_runs = None if max_runs is None else _positive_int("max_runs", max_runs)
        self.max_consecutive_errors = (
            None
            if max_consecutive_errors is None
            else _positive_int("max_consecutive_errors", max_consecutive_errors)
        )
        self.jobs_processed = 0
        self.jobs_failed = 0
        self._consecutive_errors = 0
        self._runs_started = 0
        self._fatal: WorkerError | None = None
        self._held: dict[int, ClaimedJob] = {}
        self._ready: deque[ClaimedJob] = deque()
        self._outcomes: list[tuple[ClaimedJob, FinishedJob]] = []
        self._running = 0
        self._average_job_seconds: float | None = None
        self._maybe_new_work = True
        self._claimed_at = float("-inf")
        #: Whether a round trip to the database is in flight.
        self._exchanging = False
        #: Outcomes worth the next round trip (see ``_exchange_loop``).
        self._batch_goal = 1
        self._job_available = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._grace_changed = asyncio.Event()
        self._finished = asyncio.Event()
        self._grace_deadline: float | None = None
        self._active = False
        self._started_at = 0.0
        self._log = get_logger("asyncqueue.worker", worker_id=self.worker_id)

    async def process_job(
        self, job_type: str, target_id: str, metadata: dict[str, Any]
    ) -> bool | JobResult:
        """Do the work of one job. Return True when it succeeded.

        Return ``JobResult(value)`` instead to succeed and keep ``value`` (any JSON value)
        with the job, read back as ``job.result``. Returning anything else, or raising, is a
        failed attempt: the job is retried with backoff while retries remain, then marked
        failed. Exceptions never stop the worker.
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
        Idempotent; a second call with a shorter grace period shortens the wait. A stop
        requested before the worker started (e.g. right after ``create_task(worker.start())``)
        makes that run return at once.
        """
        grace = (
            self.shutdown_grace_period
            if grace_period is None
            else _non_negative_number("grace_period", grace_period)
        )
        self._request_stop(grace)
        if self._active and not _inside_job.get():
            await self._finished.wait()

    def _request_stop(self, grace: float) -> None:
        deadline = self.clock.now() + grace
        if self._grace_deadline is None or deadline < self._grace_deadline:
            self._grace_deadline = deadline
            self._grace_changed.set()
        self._stop_requested.set()
        self._wakeup.set()

    # -- the run -----------------------------------------------------------------------
    #
    # One task, the exchange loop, talks to the queue for this worker: each round trip
    # records every outcome that arrived since the last one and claims enough jobs to fill
    # the free slots, in one transaction. ``concurrency`` runner tasks take claimed jobs from
    # a local buffer and run them; they never touch the database themselves.

    async def _run(self, *, burst: bool) -> None:
        if self._active:
            raise WorkerError(f"worker {self.worker_id} is already running")
        self._active = True
        self._reset_run_state()
        self._fatal = None
        self._consecutive_errors = 0
        self._runs_started = 0
        try:
            await self.queue.open()
            self._started_at = self.clock.now()
            await self._heartbeat()
            self._fit_heartbeat_to_lease()
            await self.queue.recover_stale_jobs()
            self.queue.add_enqueue_listener(self._on_new_work)
            self._log.info("worker.started", concurrency=self.concurrency, burst=burst)
            try:
                await self._supervise(burst)
            finally:
                self.queue.remove_enqueue_listener(self._on_new_work)
                with anyio.CancelScope(shield=True):
                    await self._unregister()
        finally:
            self._active = False
            self._stop_requested.clear()
            self._grace_deadline = None
            self._finished.set()
        if self._fatal is not None:
            raise self._fatal

    def _fit_heartbeat_to_lease(self) -> None:
        """Renew at a third of the lease the queue reports now (a server's, once known)."""
        lease = self.queue.lease_seconds
        if self._heartbeat_follows_lease:
            self.heartbeat_interval = min(lease / 3, MAX_HEARTBEAT_INTERVAL)
        elif self.heartbeat_interval >= lease:
            self._log.warning(
                "worker.heartbeat_too_slow",
                heartbeat_interval=self.heartbeat_interval,
                lease_seconds=lease,
                detail="leases expire between renewals; jobs will be taken back",
            )

    def _reset_run_state(self) -> None:
        self._finished.clear()
        self._held.clear()
        self._ready.clear()
        self._outcomes.clear()
        self._running = 0
        self._exchanging = False
        self._maybe_new_work = True
        #: When the last claim went out, on the worker's clock (see _wait_for_room_to_fill).
        self._claimed_at = self.clock.now()

    def _on_new_work(self) -> None:
        self._maybe_new_work = True
        self._wakeup.set()

    async def _supervise(self, burst: bool) -> None:
        async with anyio.create_task_group() as side:
            side.start_soon(self._maintain, name=f"asyncqueue-maintenance:{self.worker_id}")
            try:
                async with anyio.create_task_group() as work:
                    runners = anyio.CancelScope()
                    work.start_soon(self._run_runners, runners)
                    await self._exchange_loop(burst, work, runners)
                    # Runners are idle now; this also ends a grace timer still counting.
                    work.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await self._release_held()
            side.cancel_scope.cancel()
        self._log.info("worker.stopped", processed=self.jobs_processed, failed=self.jobs_failed)

    async def _run_runners(self, scope: anyio.CancelScope) -> None:
        with scope:
            async with anyio.create_task_group() as runners:
                for index in range(self.concurrency):
                    runners.start_soon(self._runner, name=f"asyncqueue-runner:{index}")

    async def _exchange_loop(
        self, burst: bool, work: anyio.abc.TaskGroup, runners: anyio.CancelScope
    ) -> None:
        grace_timer_started = False
        while True:
            stopping = self._stop_requested.is_set()
            if stopping and not grace_timer_started and self._running:
                grace_timer_started = True
                work.start_soon(self._grace_timer, runners)
            if stopping:
                self._release_ready()
            self._wakeup.clear()
            finished = self._take_outcomes()
            ahead = 0 if stopping else self._claim_ahead()
            free = 0 if stopping else self.concurrency + ahead - self._running - len(self._ready)
            claim = free if free > 0 and self._maybe_new_work else 0
            # A claim alone waits while claimed jobs are still queued (the next round trip
            # carries their outcomes and the claim): a new-work notification, such as this
            # worker's own commit seen in the WAL file, must not cost a round trip during
            # which the runners work through the queue without handing back the loop.
            if finished or (claim and not self._ready):
                # Half of what the worker may hold: runners hand back the event loop once
                # this many outcomes wait (see _runner), so the next exchange goes out while
                # the other claimed jobs keep them busy.
                self._batch_goal = max(1, (self.concurrency + ahead) // 2)
                # An idle worker's first claim fills its runners and no more, on the event
                # loop's thread when the writer is idle: a job enqueued into an idle queue
                # starts without a hop to the writer's thread. The claim for the jobs to
                # hold ahead goes out with the first outcomes.
                starting = not finished and not self._running
                if starting:
                    claim = min(claim, self.concurrency)
                await self._exchange(finished, claim, brief=starting)
                continue
            idle = not (self._running or self._ready or self._outcomes)
            if idle and (stopping or burst):
                return
            if idle and not self._maybe_new_work:
                await self._wait_for_work()
                self._maybe_new_work = True
            elif free > 0 and not self._maybe_new_work:
                await self._wait_for_room_to_fill()
            else:
                await self._wakeup.wait()

    async def _wait_for_room_to_fill(self) -> None:
        """Busy with free slots: wait for a wake-up, or until ``poll_interval`` has passed
        since the last claim, then claim: a delayed job or a retry that came due meanwhile
        sends no notification, and long jobs would otherwise keep the slots empty."""
        remaining = self._claimed_at + self.poll_interval - self.clock.now()
        if remaining > 0:
            await self._wait_for(self._wakeup, remaining)
        if self.clock.now() >= self._claimed_at + self.poll_interval:
            self._maybe_new_work = True

    async def _exchange(
        self, finished: list[tuple[ClaimedJob, FinishedJob]], claim: int, *, brief: bool = False
    ) -> None:
        if claim:
            # Cleared before the claim: a notification arriving during it is kept.
            self._maybe_new_work = False
            self._claimed_at = self.clock.now()
        self._exchanging = True
        try:
            # Shielded: a transaction that committed must reach our bookkeeping, or claimed
            # jobs would sit in processing until their lease expired.
            with anyio.CancelScope(shield=True):
                applied, claimed = await self.queue.finish_and_claim(
                    [outcome for _, outcome in finished],
                    worker_id=self.worker_id,
                    limit=claim,
                    strategy=self.strategy,
                    job_types=self.job_types,
                    brief=brief,
                )
        except QueueClosedError:
            raise
        except RemoteAuthError as exc:
            self._stop_for(exc)
            self._maybe_new_work = False
            return
        except AsyncQueueError:
            # Outcomes stay unrecorded: their leases expire and stale recovery takes the
            # jobs back. Back off before the next claim.
            self._log.exception("worker.exchange_failed", outcomes=len(finished))
            self._note_error("exchanges with the queue failed")
            self._maybe_new_work = False
            for job, _ in finished:
                self._held.pop(job.id, None)
            return
        finally:
            self._exchanging = False
        for job, outcome in finished:
            self._note_outcome(job, outcome, outcome.job_id in applied)
        if claim and len(claimed) == claim:
            self._maybe_new_work = True
        for job in claimed:
            self._held[job.id] = job
            self._ready.append(job)
        if claimed:
            self._job_available.set()

    def _take_outcomes(self) -> list[tuple[ClaimedJob, FinishedJob]]:
        taken = self._outcomes
        self._outcomes = []
        return taken

    def _release_ready(self) -> None:
        while self._ready:
            job = self._ready.popleft()
            self._outcomes.append((job, self.queue.released(job)))

    async def _grace_timer(self, runners: anyio.CancelScope) -> None:
        self._log.info("worker.draining", running=self._running)
        while self._grace_deadline is not None:
            remaining = self._grace_deadline - self.clock.now()
            if remaining <= 0:
                break
            self._grace_changed.clear()
            await self._wait_for(self._grace_changed, remaining)
        runners.cancel()

    async def _wait_for(self, event: asyncio.Event, seconds: float) -> None:
        """Wait until ``event`` is set, or ``seconds`` pass on the clock (which sets it).

        A bare timer task rather than a task group: leaving a task group costs several
        event-loop turns, and this wait ends every time an idle worker is woken.
        """
        if event.is_set():
            return
        timer = asyncio.ensure_future(self._set_after(event, seconds))
        try:
            await event.wait()
        except BaseException:
            timer.cancel()
            raise
        if not timer.done():
            timer.cancel()
            # One turn lets the timer finish, so a test clock keeps no stale sleeper.
            await asyncio.sleep(0)

    async def _set_after(self, event: asyncio.Event, seconds: float) -> None:
        await self.clock.sleep(seconds)
        event.set()

    async def _wait_for_work(self) -> None:
        """Idle: wait for a wake-up (new work seen, stop) or the queue's own wait for work.

        The queue's wait reads the earliest due time for a local queue (see
        ``JobQueue.wait_for_work``) and long-polls a remote one; it claims nothing, so
        cancelling it loses nothing.
        """
        if self._wakeup.is_set():
            return
        waiter = asyncio.ensure_future(self.queue.wait_for_work(self.poll_interval, self.job_types))
        waiter.add_done_callback(self._wake_after_wait)
        try:
            await self._wakeup.wait()
        finally:
            if not waiter.done():
                waiter.cancel()
                # One turn lets the wait finish, so a test clock keeps no stale sleeper.
                await asyncio.sleep(0)

    def _wake_after_wait(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.cancelled() and waiter.exception() is not None:
            self._log.warning("worker.wait_failed", error=str(waiter.exception()))
        self._wakeup.set()

    # -- running jobs --------------------------------------------------------------------

    async def _runner(self) -> None:
        _inside_job.set(True)
        while True:
            job = await self._next_job()
            if self._stop_requested.is_set():
                self._outcomes.append((job, self.queue.released(job)))
                self._wakeup.set()
                continue
            self._running += 1
            if self.max_runs is not None:
                self._note_start()
            started = time.perf_counter()
            try:
                error, result_json = await self._call(job)
            finally:
                # On cancellation the job keeps its lease and no outcome: it is released.
                self._running -= 1
                self._wakeup.set()
            duration = time.perf_counter() - started
            self._note_duration(duration)
            self._outcomes.append(
                (job, self.queue.outcome(job, error, duration, result_json=result_json))
            )
            if self.max_consecutive_errors is not None:
                self._note_run(error)
            if len(self._outcomes) >= self._batch_goal and not self._exchanging:
                # A job that never awaits anything would let this runner work through the
                # whole buffer before the exchange loop runs: give it the turn to send this
                # batch while the other claimed jobs keep the runners busy.
                await asyncio.sleep(0)

    def _note_duration(self, seconds: float) -> None:
        average = self._average_job_seconds
        self._average_job_seconds = (
            seconds if average is None else average + (seconds - average) / 16
        )

    def _claim_ahead(self) -> int:
        """Jobs to hold beyond the free slots, so runners never wait for a round trip.

        Only while jobs are short: a claimed job waiting behind long ones would be better
        off with another worker.
        """
        average = self._average_job_seconds
        if average is None or average >= CLAIM_AHEAD_MAX_JOB_SECONDS:
            return 0
        per_runner = int(CLAIM_AHEAD_MAX_JOB_SECONDS / max(average, 1e-9))
        return min(CLAIM_AHEAD_MAX_JOBS, self.concurrency * max(1, per_runner))

    async def _next_job(self) -> ClaimedJob:
        while not self._ready:
            self._job_available.clear()
            await self._job_available.wait()
        return self._ready.popleft()

    async def _call(self, job: ClaimedJob) -> tuple[str | None, str | None]:
        """Run ``process_job``; return ``(error, result_json)``: error None on success."""
        self._log.debug("job.started", job_id=job.id, job_type=job.job_type)
        try:
            result = await self.process_job(job.job_type, job.target_id, job.metadata)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the worker itself is being cancelled
            # The job's own code raised CancelledError (say, it awaited a future someone
            # cancelled): a failed attempt like any other.
            return self._attempt_failed(job, exc), None
        except Exception as exc:  # noqa: BLE001 - a job's failure must never stop the worker
            return self._attempt_failed(job, exc), None
        if result is True:
            return None, None
        if isinstance(result, JobResult):
            try:
                return None, encode_result(result.value, self.queue.max_result_bytes)
            except AsyncQueueError as exc:
                return self._attempt_failed(job, exc), None
        if result is False:
            return "process_job returned False", None
        return f"process_job returned {_short_repr(result)} instead of True", None

    def _attempt_failed(self, job: ClaimedJob, exc: BaseException) -> str:
        error = describe_exception(exc)
        if len(error) <= MAX_ERROR_CHARS:
            self._log.warning(
                "job.attempt_failed", job_id=job.id, job_type=job.job_type, exc_info=exc
            )
        else:
            # The message would flood the log, and a rich renderer spends minutes on one of
            # a megabyte: the stored (cut) message and the frames instead.
            self._log.warning(
                "job.attempt_failed",
                job_id=job.id,
                job_type=job.job_type,
                error=storable_error(error),
                traceback="".join(traceback.format_tb(exc.__traceback__)),
            )
        return error

    def _note_error(self, what: str) -> None:
        """Count one error in a row; past ``max_consecutive_errors``, stop with an error."""
        self._consecutive_errors += 1
        limit = self.max_consecutive_errors
        if limit is not None and self._consecutive_errors >= limit and self._fatal is None:
            self._fatal = WorkerError(
                f"worker {self.worker_id} stopped: {self._consecutive_errors} {what} in a row "
                f"(max_consecutive_errors={limit})"
            )
            self._log.error("worker.too_many_errors", errors=self._consecutive_errors)
            self._request_stop(self.shutdown_grace_period)

    def _stop_for(self, exc: RemoteAuthError) -> None:
        """A refused token will not start working by itself: stop, and raise it from start()."""
        if self._fatal is None:
            self._fatal = WorkerError(f"worker {self.worker_id} stopped: {exc}")
            self._fatal.__cause__ = exc
            self._log.error("worker.unauthorized", error=str(exc))
        self._request_stop(self.shutdown_grace_period)

    def _note_run(self, error: str | None) -> None:
        if error is None:
            self._consecutive_errors = 0
        else:
            self._note_error("failed attempts")

    def _note_start(self) -> None:
        """Count a job started; the ``max_runs``-th stops the worker once it has run."""
        self._runs_started += 1
        if self.max_runs is not None and self._runs_started >= self.max_runs:
            if not self._stop_requested.is_set():
                self._log.info("worker.max_runs_reached", runs=self._runs_started)
            self._request_stop(self.shutdown_grace_period)

    def _note_outcome(self, job: ClaimedJob, outcome: FinishedJob, applied: bool) -> None:
        self._held.pop(job.id, None)
        status = outcome.status
        if not applied:
            self._log.warning(
                "job.lease_lost",
                job_id=job.id,
                job_type=job.job_type,
                detail="outcome discarded: the job's lease had expired",
            )
        elif status is JobStatus.COMPLETED:
            self.jobs_processed += 1
            self._log.debug("job.completed", job_id=job.id, job_type=job.job_type)
        elif status is JobStatus.PENDING:
            self._log.info("job.released", job_id=job.id, job_type=job.job_type)
        else:
            self.jobs_failed += 1
            self._log.info(
                f"job.{status.value}", job_id=job.id, job_type=job.job_type, error=outcome.error
            )

    async def _release_held(self) -> None:
        """Return every job still held (not started, or cancelled mid-run) to pending."""
        self._release_ready()
        finished = self._take_outcomes()
        recorded = {job.id for job, _ in finished}
        finished += [
            (job, self.queue.released(job)) for job in self._held.values() if job.id not in recorded
        ]
        if not finished:
            return
        try:
            applied, _ = await self.queue.finish_and_claim(
                [outcome for _, outcome in finished], worker_id=self.worker_id, limit=0
            )
        except AsyncQueueError:
            self._log.exception("worker.release_failed", jobs=len(finished))
            return
        for job, outcome in finished:
            self._note_outcome(job, outcome, outcome.job_id in applied)

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
            except RemoteAuthError as exc:
                self._stop_for(exc)
            except AsyncQueueError:
                self._log.exception("worker.maintenance_failed")
                self._note_error("heartbeats failed")

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


def _short_repr(value: object, limit: int = 200) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not lose the failure
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """``"ExcType: message"`` for ``error_message``, even when ``str(exc)`` itself fails."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the failure
        message = "<exception message could not be rendered>"
    # Made storable (lone surrogates, NUL, length) by the queue's outcome.
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _worker_id(worker_id: str | None) -> str:
    if worker_id is None:
        return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    if not isinstance(worker_id, str) or not worker_id.strip() or len(worker_id) > 255:
        raise ConfigurationError(
            f"worker_id must be a non-empty str of at most 255 characters, got {worker_id!r}"
        )
    # Stored in every claimed job's row: text both databases take (as the HTTP API requires).
    try:
        worker_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"worker_id must be valid Unicode, got {worker_id!r}") from None
    if "\x00" in worker_id:
        raise ConfigurationError(f"worker_id must not contain NUL characters, got {worker_id!r}")
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
