"""The ``worker`` command: import a QueueWorker subclass and run it until a signal stops it."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click
import structlog

from asyncqueue.cli.context import App, CLIUsageError, pass_app, run
from asyncqueue.cli.render import plural
from asyncqueue.config import redacted
from asyncqueue.queue import JobQueue
from asyncqueue.remote import RemoteQueue
from asyncqueue.signals import stop_on_signals
from asyncqueue.worker import QueueWorker

_LOG_LEVELS = ["debug", "info", "warning", "error"]


def load_worker_class(spec: str) -> type[QueueWorker]:
    """Import ``MODULE:CLASS`` (the class may be dotted: ``module:Outer.Inner``).

    The current directory is importable, as with ``python -m``.

    Raises:
        CLIUsageError: the spec is malformed, the module cannot be imported, the name
            is missing, or it is not a QueueWorker subclass.
    """
    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        raise CLIUsageError(f"expected MODULE:CLASS, like myapp.jobs:EmailWorker, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise CLIUsageError(
                f"cannot import {module_name!r}: no module named {exc.name!r}"
            ) from None
        raise _import_failed(module_name, exc) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed: one line, not a traceback
        raise _import_failed(module_name, exc) from None
    found: Any = module
    for name in qualname.split("."):
        if not hasattr(found, name):
            raise CLIUsageError(f"module {module_name!r} has no attribute {qualname!r}")
        found = getattr(found, name)
    if not isinstance(found, type) or not issubclass(found, QueueWorker):
        kind = type(found).__name__
        raise CLIUsageError(f"{spec} is not a QueueWorker subclass (it is a {kind})")
    if found is QueueWorker:
        raise CLIUsageError(f"{spec} is QueueWorker itself; name a subclass with process_job")
    return found


def _import_failed(module_name: str, exc: BaseException) -> CLIUsageError:
    message = str(exc).splitlines()[0] if str(exc) else ""
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return CLIUsageError(f"cannot import {module_name!r}: {detail}")


def configure_logging(level: str) -> None:
    """Send asyncqueue's log events at ``level`` and above to stderr, one line each.

    Left alone if the worker's module configured structlog itself.
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _options(**given: Any) -> dict[str, Any]:
    """The options the user gave; the others keep the worker class's own defaults."""
    return {name: value for name, value in given.items() if value is not None}


def _job_types(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one job type", param_hint="--job-types")
    return names


def _announce(worker: QueueWorker) -> Callable[[signal.Signals, int], None]:
    def on_signal(sig: signal.Signals, count: int) -> None:
        if count == 1:
            click.echo(
                f"asyncqueue worker: {sig.name} received, stopping: running jobs get up to "
                f"{worker.shutdown_grace_period:g}s to finish ({sig.name} again stops at once)",
                err=True,
            )
        elif count == 2:
            click.echo(
                f"asyncqueue worker: {sig.name} received again, stopping now: running jobs "
                "go back to pending",
                err=True,
            )

    return on_signal


def _where(queue: JobQueue | RemoteQueue) -> str:
    return queue.api_url if isinstance(queue, RemoteQueue) else redacted(str(queue.path))


async def _run_worker(
    app: App,
    cls: type[QueueWorker],
    spec: str,
    options: dict[str, Any],
    remote: dict[str, Any] | None,
) -> str:
    queue: JobQueue | RemoteQueue = app.queue() if remote is None else RemoteQueue(**remote)
    try:
        worker = cls(queue, **options)
    except TypeError as exc:
        raise CLIUsageError(f"cannot create {spec}: {exc}") from None
    async with stop_on_signals(worker, on_signal=_announce(worker)):
        try:
            await queue.open()
            click.echo(
                f"asyncqueue worker: {worker.worker_id} running {spec} on {_where(queue)} "
                f"(concurrency {worker.concurrency}); Ctrl-C or SIGTERM stops it",
                err=True,
            )
            await worker.start()
        finally:
            await queue.close()
    return (
        f"asyncqueue worker: {worker.worker_id} stopped after "
        f"{plural(worker.jobs_processed, 'job')} ({worker.jobs_failed} failed attempts)"
    )


@click.command()
@click.argument("spec", metavar="MODULE:CLASS")
@click.option("--concurrency", type=click.IntRange(min=1), help="Jobs run at once.")
@click.option("--job-types", metavar="A,B", help="Claim only these job types (comma-separated).")
@click.option(
    "--strategy",
    type=click.Choice(["priority", "fifo", "lifo"]),
    help="Claim order (default priority: 1 before 10, then oldest first).",
)
@click.option("--worker-id", metavar="ID", help="A unique name (default host-pid-random).")
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Time running jobs get after the first signal (default 30).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="How often an idle worker looks for delayed jobs coming due (default 1).",
)
@click.option(
    "--url",
    metavar="API_URL",
    help="Run remotely on an 'asyncqueue serve' API (e.g. http://host:8000/api) instead of --db.",
)
@click.option(
    "--token",
    metavar="TOKEN",
    envvar="QUEUE_API_TOKEN",
    help="Bearer token for --url (default: $QUEUE_API_TOKEN).",
)
@click.option(
    "--reconnect-seconds",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --url: how long a request is retried while the server is unreachable (60).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop gracefully after N jobs (default: no limit).",
)
@click.option(
    "--max-consecutive-errors",
    type=click.IntRange(min=1),
    metavar="N",
    help="Exit 1 after N failed attempts or failed exchanges in a row (default: no limit).",
)
@click.option(
    "--log-level",
    type=click.Choice(_LOG_LEVELS),
    default="info",
    show_default=True,
    help="Least severe log events printed on stderr.",
)
@pass_app
def worker(
    app: App,
    spec: str,
    concurrency: int | None,
    job_types: str | None,
    strategy: str | None,
    worker_id: str | None,
    grace_period: float | None,
    poll_interval: float | None,
    url: str | None,
    token: str | None,
    reconnect_seconds: float | None,
    max_runs: int | None,
    max_consecutive_errors: int | None,
    log_level: str,
) -> None:
    """Run a worker: MODULE:CLASS names your QueueWorker subclass.

    Runs until SIGINT (Ctrl-C) or SIGTERM. The first signal stops gracefully: nothing new
    is claimed and running jobs get --grace-period seconds to finish. A second signal
    stops at once, putting running jobs back to pending. Exits 0 after a clean stop.
    Start several worker processes on one database to use more cores.

    With --url the worker runs on another host's queue through the HTTP API of
    'asyncqueue serve' (needs httpx: pip install 'asyncqueue[remote]'); --db is not used.
    """
    options = _options(
        concurrency=concurrency,
        job_types=_job_types(job_types),
        strategy=strategy,
        worker_id=worker_id,
        shutdown_grace_period=grace_period,
        poll_interval=poll_interval,
        max_runs=max_runs,
        max_consecutive_errors=max_consecutive_errors,
    )
    cls = load_worker_class(spec)
    configure_logging(log_level)
    remote = (
        None
        if url is None
        else _options(api_url=url, token=token, reconnect_seconds=reconnect_seconds)
    )
    click.echo(run(_run_worker(app, cls, spec, options, remote)), err=True)
