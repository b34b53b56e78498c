"""Export asyncqueue metrics to Prometheus with prometheus-client.

asyncqueue does not depend on Prometheus; this example glues the two together with the
public API only:

- ``queue.subscribe(callback)`` delivers every job event of this process (enqueued, claimed,
  completed, retry scheduled, failed, ...) as it happens. Each becomes a counter increment,
  and the measured attempt duration (on completed, failed and retry-scheduled events) a
  histogram observation. Events are in-process: run the exporter in the process that runs
  your workers (``QueueExporter(queue)`` next to them) to see their events.
- ``queue.get_metrics(window=...)`` and ``queue.get_queue_stats()`` read the database, so
  the gauges refreshed from them every few seconds cover every process using the file:
  depth by type and status, oldest pending age, throughput, failure rate, processing-time
  percentiles, live workers.

Run it with::

    pip install prometheus-client
    python examples/prometheus_exporter.py --db queue.db --port 9108   # serve /metrics
    python examples/prometheus_exporter.py --once   # demo workload, print the metrics, exit

Standalone (the first command) it serves the database-wide gauges; its own event counters
stay at zero because no worker runs in its process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from asyncqueue import JobQueue, QueueWorker

if TYPE_CHECKING:
    from asyncqueue import JobEvent

DEFAULT_PORT = 9108
REFRESH_SECONDS = 5.0
#: Window of the rate and percentile gauges, in seconds.
WINDOW_SECONDS = 60.0
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class LabelledGauge:
    """A gauge whose label sets are replaced wholesale, so vanished ones stop being exported."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._seen: set[tuple[str, ...]] = set()

    def replace(self, values: Iterable[tuple[tuple[str, ...], float]]) -> None:
        """Set each ``(labels, value)`` and remove the label sets not given this time."""
        current: set[tuple[str, ...]] = set()
        for labels, value in values:
            self._gauge.labels(*labels).set(value)
            current.add(labels)
        for labels in self._seen - current:
            self._gauge.remove(*labels)
        self._seen = current


class QueueExporter:
    """Prometheus metrics for one :class:`~asyncqueue.JobQueue`, in their own registry.

    Args:
        queue: the queue to observe.
        registry: where the metrics are registered (default: a new registry).
        window: seconds covered by the rate and percentile gauges.
    """

    def __init__(
        self,
        queue: JobQueue,
        registry: CollectorRegistry | None = None,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.queue = queue
        self.registry = registry if registry is not None else CollectorRegistry()
        self.window = window
        self._unsubscribe: Callable[[], None] | None = None
        r = self.registry
        self.events = Counter(
            "asyncqueue_job_events",
            "Job events seen by this process, by event and job type.",
            ["event", "job_type"],
            registry=r,
        )
        self.durations = Histogram(
            "asyncqueue_job_duration_seconds",
            "Attempt durations measured by this process's workers, by job type and outcome.",
            ["job_type", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.depth = LabelledGauge(
            Gauge(
                "asyncqueue_jobs",
                "Jobs in the database by type and status.",
                ["job_type", "status"],
                registry=r,
            )
        )
        self.processing = LabelledGauge(
            Gauge(
                "asyncqueue_processing_seconds",
                "Processing-time percentiles of jobs completed in the window, by job type.",
                ["job_type", "percentile"],
                registry=r,
            )
        )
        self.oldest_pending_age = Gauge(
            "asyncqueue_oldest_pending_age_seconds",
            "How long the longest-waiting due job has been due (0 when none is).",
            registry=r,
        )
        self.completed_last_minute = Gauge(
            "asyncqueue_completed_last_minute", "Jobs completed in the last 60 s.", registry=r
        )
        self.failure_rate = Gauge(
            "asyncqueue_failure_rate",
            "Failed / (completed + failed) in the window; NaN when none finished.",
            registry=r,
        )
        self.active_workers = Gauge(
            "asyncqueue_active_workers", "Workers with a recent heartbeat.", registry=r
        )

    def start(self) -> None:
        """Subscribe to the queue's job events."""
        if self._unsubscribe is None:
            self._unsubscribe = self.queue.subscribe(self.on_event)

    def close(self) -> None:
        """Stop receiving job events."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_event(self, event: JobEvent) -> None:
        """Count one job event; observe its attempt duration when the worker measured one."""
        job_type = event.job_type or "unknown"
        self.events.labels(event.event.value, job_type).inc()
        if event.duration_seconds is not None:
            self.durations.labels(job_type, event.event.value).observe(event.duration_seconds)

    async def refresh(self) -> None:
        """Refresh the gauges from the database."""
        metrics = await self.queue.get_metrics(window=self.window)
        stats = await self.queue.get_queue_stats()
        self.depth.replace(
            ((job_type, status), count)
            for job_type, by_status in metrics.depth.items()
            for status, count in by_status.items()
        )
        self.processing.replace(
            ((job_type, name), value)
            for job_type, m in metrics.by_type.items()
            for name, value in (
                ("50", m.processing_p50),
                ("95", m.processing_p95),
                ("99", m.processing_p99),
            )
            if value is not None
        )
        self.oldest_pending_age.set(metrics.oldest_pending_age_seconds or 0.0)
        self.completed_last_minute.set(metrics.completed_last_minute)
        rate = metrics.failure_rate
        self.failure_rate.set(math.nan if rate is None else rate)
        self.active_workers.set(stats.active_workers)

    async def refresh_forever(self, interval: float = REFRESH_SECONDS) -> None:
        """Refresh the gauges every ``interval`` seconds until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(interval)

    def exposition(self) -> str:
        """The metrics in Prometheus' text format, as a scrape would see them."""
        return generate_latest(self.registry).decode()


# -- the demo workload for --once ----------------------------------------------------------


class DemoWorker(QueueWorker):
    """Short jobs; every fifth fails its first attempt, every seventh never succeeds."""

    def __init__(self, queue: JobQueue, **options: Any) -> None:
        super().__init__(queue, **options)
        self.attempts: dict[str, int] = {}

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        self.attempts[target_id] = self.attempts.get(target_id, 0) + 1
        await asyncio.sleep(metadata["seconds"])
        if metadata["broken"]:
            raise RuntimeError(f"{target_id}: cannot be processed")
        return not (metadata["flaky"] and self.attempts[target_id] == 1)


async def run_demo(queue: JobQueue, exporter: QueueExporter, jobs: int = 40) -> None:
    """Enqueue ``jobs`` jobs, run them to the end with a worker, then refresh the gauges."""
    await queue.enqueue_many(
        {
            "job_type": ("resize_image", "send_email")[n % 2],
            "target_id": f"item-{n}",
            "metadata": {"seconds": 0.001 * (n % 5), "flaky": n % 5 == 0, "broken": n % 7 == 6},
        }
        for n in range(jobs)
    )
    worker = DemoWorker(queue, worker_id="demo", concurrency=4, poll_interval=0.01)
    deadline = time.monotonic() + 30.0
    while True:
        await worker.run_until_idle()
        stats = await queue.get_queue_stats()
        if stats.pending_jobs + stats.retry_scheduled_jobs + stats.processing_jobs == 0:
            break
        if time.monotonic() > deadline:
            raise SystemExit("the demo queue did not drain within 30 s")
        await asyncio.sleep(0.01)  # let retry backoffs pass
    await exporter.refresh()


async def once() -> None:
    """Run the demo on a temporary database and print the exposition text."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "demo.db"
        async with JobQueue(path, retry_base_delay=0.005, max_retries=1) as queue:
            exporter = QueueExporter(queue)
            exporter.start()
            try:
                await run_demo(queue, exporter)
            finally:
                exporter.close()
            print(exporter.exposition(), end="")


async def serve(db: str | None, port: int, interval: float, window: float) -> None:
    """Serve /metrics on ``port``, refreshing the gauges every ``interval`` s, until a signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with JobQueue(db) as queue:
        exporter = QueueExporter(queue, window=window)
        exporter.start()
        start_http_server(port, registry=exporter.registry)
        print(f"serving metrics of {queue.path} on http://localhost:{port}/metrics", flush=True)
        refresher = asyncio.create_task(exporter.refresh_forever(interval))
        try:
            await stop.wait()
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            exporter.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Export asyncqueue metrics to Prometheus.")
    parser.add_argument(
        "--db", help="the queue database (default: QUEUE_DB_PATH or ./asyncqueue.db)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port for /metrics")
    parser.add_argument(
        "--interval", type=float, default=REFRESH_SECONDS, help="seconds between gauge refreshes"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=WINDOW_SECONDS,
        help="seconds covered by the rate and percentile gauges",
    )
    parser.add_argument(
        "--once", action="store_true", help="run a demo workload, print the metrics and exit"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.once:
        # Each failed attempt of the demo is intended; keep its warnings off the output.
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
        asyncio.run(once())
    else:
        asyncio.run(serve(args.db, args.port, args.interval, args.window))


if __name__ == "__main__":
    main(sys.argv[1:])
