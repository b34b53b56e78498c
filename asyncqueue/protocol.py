"""The queue as a worker sees it: the few verbs ``QueueWorker`` calls, whatever the transport.

``JobQueue`` implements them on its own database; ``RemoteQueue`` implements them over the
HTTP API of ``asyncqueue serve``. One worker class runs on either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from asyncqueue.clock import Clock
from asyncqueue.job import ClaimedJob, JobStatus
from asyncqueue.storage.base import FinishedJob, Strategy, WorkerRecord


@runtime_checkable
class WorkerQueue(Protocol):
    """The verbs of a queue that ``QueueWorker`` uses.

    Every change to a held job is fenced by its lease: it applies only while the worker
    still holds the job, and the verb reports whether it did.
    """

    #: The time source every timer of the worker reads.
    clock: Clock

    @property
    def lease_seconds(self) -> float:
        """How long a claim holds a job without renewal."""
        ...

    @property
    def max_result_bytes(self) -> int:
        """The largest result (bytes of JSON) a completed job may keep."""
        ...

    async def open(self) -> Any:
        """Make the queue usable. Idempotent."""
        ...

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
        """Record outcomes of held jobs and claim up to ``limit`` more, in one exchange.

        Returns the ids whose outcome applied and the newly claimed jobs.
        """
        ...

    def outcome(
        self,
        job: ClaimedJob,
        error: str | None,
        duration: float | None = None,
        *,
        result_json: str | None = None,
    ) -> FinishedJob:
        """The outcome of an attempt that ended with ``error`` (None: it succeeded)."""
        ...

    def released(self, job: ClaimedJob) -> FinishedJob:
        """The outcome that gives a held job back without counting the attempt."""
        ...

    async def renew_leases(self, jobs: Iterable[ClaimedJob]) -> set[int]:
        """Extend the leases of held jobs; return the ids still held."""
        ...

    async def record_worker(self, worker: WorkerRecord) -> None:
        """Register or heartbeat a worker."""
        ...

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker (on its clean stop)."""
        ...

    async def recover_stale_jobs(self) -> int:
        """Take back jobs whose lease expired; return how many."""
        ...

    async def wait_for_work(self, seconds: float, job_types: tuple[str, ...] | None) -> None:
        """Return when new work may be there, or after ``seconds`` at the latest.

        An idle worker races this with its own wake-up event (stop, or a listener below),
        so an implementation may simply sleep; a remote one long-polls the server.
        """
        ...

    def add_enqueue_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever new work may be there (may do nothing)."""
        ...

    def remove_enqueue_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``."""
        ...


def predicted_failure(job: ClaimedJob) -> JobStatus:
    """The status a failed attempt leads to: a retry while retries remain, else failed."""
    return JobStatus.RETRY_SCHEDULED if job.retry_count < job.max_retries else JobStatus.FAILED
