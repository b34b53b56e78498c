"""Commands that watch the queue: stats (once or refreshing) and workers."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import click

from asyncqueue.cli.context import App, pass_app, run
from asyncqueue.cli.render import duration, echo_json, percent, table, when
from asyncqueue.job import JobStatus
from asyncqueue.queue import JobQueue
from asyncqueue.storage.sqlite_maintenance import WorkerInfo

_CLEAR_SCREEN = "\x1b[H\x1b[2J"
#: The statuses in the columns of the counts by type, in their lifecycle order.
_STATUS_COLUMNS = (
    JobStatus.PENDING,
    JobStatus.PROCESSING,
    JobStatus.RETRY_SCHEDULED,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)


async def collect_stats(queue: JobQueue, window: float) -> dict[str, Any]:
    """Everything ``stats`` shows, as a JSON-ready dict.

    ``metrics`` is ``JobQueue.get_metrics(window=...)`` as a dict, or None where the
    library has no metrics.
    """
    stats = await queue.get_queue_stats()
    by_type = await queue.count_jobs_by_type()
    get_metrics = getattr(queue, "get_metrics", None)
    metrics = None if get_metrics is None else (await get_metrics(window=window)).to_dict()
    return {
        "database": queue.location,
        "generated_at": datetime.fromtimestamp(queue.clock.now(), UTC).isoformat(),
        "stats": stats.to_dict(),
        "by_type": by_type,
        "metrics": metrics,
    }


def _status_lines(stats: dict[str, int]) -> list[str]:
    rows: list[list[Any]] = [
        ["pending", stats["pending_jobs"], f"({stats['delayed_jobs']} delayed)"],
        ["processing", stats["processing_jobs"], ""],
        ["retry_scheduled", stats["retry_scheduled_jobs"], ""],
        ["completed", stats["completed_jobs"], ""],
        ["failed", stats["failed_jobs"], ""],
        ["cancelled", stats["cancelled_jobs"], ""],
        ["total", stats["total_jobs"], ""],
    ]
    return table(["STATUS", ">JOBS", ""], rows).splitlines()


def _type_lines(by_type: dict[str, dict[str, int]]) -> list[str]:
    if not by_type:
        return []
    rows = [
        [job_type, *(counts.get(s.value, 0) for s in _STATUS_COLUMNS), sum(counts.values())]
        for job_type, counts in sorted(by_type.items())
    ]
    headers = ["TYPE", *(s.value.upper() for s in _STATUS_COLUMNS), "TOTAL"]
    return ["", table(headers, rows)]


def _metrics_lines(metrics: dict[str, Any] | None) -> list[str]:
    if metrics is None:
        return []
    window = duration(metrics.get("window_seconds"))
    lines = [
        "",
        (
            f"throughput       {metrics.get('completed_last_minute', 0)} completed in the "
            f"last minute, {metrics.get('completed_last_hour', 0)} in the last hour"
        ),
        (
            f"failure rate     {percent(metrics.get('failure_rate'))} over the last {window} "
            f"({metrics.get('failed_in_window', 0)} failed, "
            f"{metrics.get('completed_in_window', 0)} completed)"
        ),
        f"oldest pending   {duration(metrics.get('oldest_pending_age_seconds'))}",
    ]
    by_type: dict[str, dict[str, Any]] = metrics.get("by_type") or {}
    rows = [
        [
            job_type,
            m.get("completed"),
            m.get("failed"),
            duration(m.get("processing_p50")),
            duration(m.get("processing_p95")),
            duration(m.get("processing_p99")),
        ]
        for job_type, m in sorted(by_type.items())
    ]
    if rows:
        headers = ["TYPE", "COMPLETED", "FAILED", ">P50", ">P95", ">P99"]
        lines += ["", f"processing time over the last {window}:", table(headers, rows)]
    return lines


def render_stats(report: dict[str, Any]) -> str:
    """The text ``stats`` prints for one report of :func:`collect_stats`."""
    stats = report["stats"]
    lines = [
        f"database         {report['database']}",
        f"active workers   {stats['active_workers']}",
        "",
        *_status_lines(stats),
        *_type_lines(report["by_type"]),
        *_metrics_lines(report["metrics"]),
    ]
    return "\n".join(lines)


async def _watch(app: App, every: float | None, as_json: bool, window: float) -> None:
    clear = every is not None and not as_json and sys.stdout.isatty()
    async with app.open_queue() as queue:
        while True:
            report = await collect_stats(queue, window)
            if as_json:
                echo_json(report, compact=every is not None)
            else:
                text = render_stats(report)
                if every is not None:
                    stamp = f"every {every:g}s, Ctrl-C to stop: {when(datetime.now(UTC))} UTC"
                    text = f"{_CLEAR_SCREEN if clear else ''}{stamp}\n\n{text}\n"
                click.echo(text)
            if every is None:
                return
            await asyncio.sleep(every)


@click.command()
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Refresh every SECONDS until Ctrl-C (with --json: one JSON document per line).",
)
@click.option(
    "--window",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Window of the failure rate and processing times.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def stats(app: App, watch: float | None, window: float, as_json: bool) -> None:
    """Show counts by status and by type, active workers, throughput and timings."""
    try:
        run(_watch(app, watch, as_json, window))
    except KeyboardInterrupt:
        if watch is None:
            raise
        # Ctrl-C is how --watch ends: a normal exit.


def _worker_rows(workers: list[WorkerInfo], now: datetime) -> list[list[Any]]:
    return [
        [
            w.worker_id,
            w.host,
            w.pid,
            "yes" if w.alive else "no",
            w.running_jobs,
            w.jobs_processed,
            w.jobs_failed,
            when(w.started_at),
            f"{duration(max(0.0, (now - w.last_heartbeat).total_seconds()))} ago",
        ]
        for w in workers
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def workers(app: App, as_json: bool) -> None:
    """List registered workers, alive or not (alive: a heartbeat within 3 intervals)."""

    async def main() -> tuple[list[WorkerInfo], datetime]:
        async with app.open_queue() as queue:
            found = await queue.list_workers()
            return found, datetime.fromtimestamp(queue.clock.now(), UTC)

    found, now = run(main())
    if as_json:
        echo_json([worker.to_dict() for worker in found])
    elif not found:
        click.echo("no workers registered")
    else:
        headers = [
            "WORKER",
            "HOST",
            "PID",
            "ALIVE",
            "RUNNING",
            "PROCESSED",
            "FAILED",
            "STARTED (UTC)",
            "LAST HEARTBEAT",
        ]
        click.echo(table(headers, _worker_rows(found, now)))
