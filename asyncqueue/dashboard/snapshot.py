"""One snapshot of the queue's figures, shared by every viewer of a dashboard.

Counting a table of a million jobs takes a pass over an index (tens of milliseconds); a
dashboard that counted per page view and per open tab would be the load it is meant to
watch (Oban's and rq-dashboard's complaint). So counts are read at most once per change
signal (or every few seconds), by one reader at a time, and every page shows that snapshot.
Metrics (percentiles, throughput chart, oldest pending) cost more and refresh less often.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from asyncqueue.job import QueueStats
from asyncqueue.metrics import QueueMetrics, ThroughputBucket
from asyncqueue.queue import JobQueue
from asyncqueue.storage.sqlite_maintenance import WorkerInfo

#: Counts older than this are read again even without a change (seconds).
COUNTS_MAX_AGE = 2.0
#: A snapshot started this recently is reused even after a change: it began after the
#: change the page was told about (a stream's events come at least this late after one).
COUNTS_MIN_AGE = 0.2
#: Metrics older than this are read again (seconds).
METRICS_MAX_AGE = 5.0
#: The metrics window: percentiles and rates cover this many seconds.
METRICS_WINDOW = 300.0
#: The throughput chart covers this many seconds, in this many bars.
CHART_WINDOW = 3600.0
CHART_BUCKETS = 60


@dataclass(frozen=True, slots=True)
class Counts:
    """Job counts by status and by type, and the workers, read together."""

    stats: QueueStats
    by_type: dict[str, dict[str, int]]
    workers: list[WorkerInfo]
    read_at: datetime

    def matching(self, statuses: list[str], job_type: str | None) -> int:
        """How many jobs have one of ``statuses`` (all, if empty) and ``job_type`` (any)."""
        total = 0
        for type_name, counts in self.by_type.items():
            if job_type is not None and type_name != job_type:
                continue
            total += sum(n for s, n in counts.items() if not statuses or s in statuses)
        return total


@dataclass(frozen=True, slots=True)
class Metrics:
    """Rates, percentiles and the throughput series, read together."""

    metrics: QueueMetrics
    throughput: list[ThroughputBucket]


class SnapshotCache:
    """The dashboard's shared snapshot.

    Args:
        queue: the queue read.
        change_seq: the dashboard's change count (see ``ChangeSignal.seq``).
    """

    def __init__(self, queue: JobQueue, change_seq: Callable[[], int]) -> None:
        self._queue = queue
        self._change_seq = change_seq
        self._counts: Counts | None = None
        self._counts_started = 0.0
        self._counts_seq = -1
        self._counts_lock = asyncio.Lock()
        self._metrics: Metrics | None = None
        self._metrics_started = 0.0
        self._metrics_lock = asyncio.Lock()
        #: How many times counts were read (tests check that viewers share them).
        self.count_reads = 0

    def _counts_fresh(self) -> bool:
        age = time.monotonic() - self._counts_started
        if self._counts is None:
            return False
        return age < COUNTS_MIN_AGE or (
            age < COUNTS_MAX_AGE and self._counts_seq == self._change_seq()
        )

    async def counts(self) -> Counts:
        """The shared counts, read again if a change happened or they are old."""
        if self._counts_fresh():
            assert self._counts is not None
            return self._counts
        async with self._counts_lock:
            if not self._counts_fresh():
                started, seq = time.monotonic(), self._change_seq()
                stats = await self._queue.get_queue_stats()
                by_type = await self._queue.count_jobs_by_type()
                workers = await self._queue.list_workers()
                self.count_reads += 1
                self._counts = Counts(stats, by_type, workers, datetime.now(UTC))
                self._counts_started, self._counts_seq = started, seq
        assert self._counts is not None
        return self._counts

    async def metrics(self) -> Metrics:
        """The shared metrics, read again when older than :data:`METRICS_MAX_AGE`."""
        async with self._metrics_lock:
            age = time.monotonic() - self._metrics_started
            if self._metrics is None or age >= METRICS_MAX_AGE:
                started = time.monotonic()
                metrics = await self._queue.get_metrics(METRICS_WINDOW)
                throughput = await self._queue.get_throughput(CHART_WINDOW, CHART_BUCKETS)
                self._metrics = Metrics(metrics, throughput)
                self._metrics_started = started
            return self._metrics
