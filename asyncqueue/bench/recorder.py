"""The benchmark's worker: a no-op job that only logs its start."""

from __future__ import annotations

from typing import Any

from asyncqueue import QueueWorker, WorkerQueue
from asyncqueue.bench.joblog import JobLogWriter


class RecordingWorker(QueueWorker):
    """A :class:`QueueWorker` whose jobs append ``target_id time.time()`` to the job log."""

    def __init__(
        self,
        queue: WorkerQueue,
        joblog: JobLogWriter,
        *,
        concurrency: int,
        poll_interval: float | None = None,
    ) -> None:
        options: dict[str, Any] = {"concurrency": concurrency}
        if poll_interval is not None:
            options["poll_interval"] = poll_interval
        super().__init__(queue, **options)
        self._joblog = joblog

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        """Log the start and succeed."""
        self._joblog.record(target_id)
        return True


class NoopWorker(QueueWorker):
    """A :class:`QueueWorker` whose jobs do nothing (used to complete a backlog quickly)."""

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        """Succeed."""
        return True
