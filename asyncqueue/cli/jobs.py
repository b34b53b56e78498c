"""Commands on jobs: enqueue, jobs, job, failed, retry, cancel, recover, cleanup."""

from __future__ import annotations

import json
from typing import Any

import click

from asyncqueue.cli.context import App, CLIError, pass_app, run
from asyncqueue.cli.render import cell_text, echo_json, plural, shorten, table, when
from asyncqueue.events import JobEvent, JobEventType
from asyncqueue.job import READY_STATUSES, Job, JobStatus
from asyncqueue.queue import JobQueue
from asyncqueue.validation import DEFAULT_PRIORITY

_STATUSES = [status.value for status in JobStatus]
_RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
limit_option = click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most jobs shown."
)


def _metadata(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        metadata = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise click.BadParameter("nested too deeply to read") from None
    if not isinstance(metadata, dict):
        raise click.BadParameter('must be a JSON object, like \'{"key": "value"}\'')
    return metadata


@click.command()
@click.argument("job_type", metavar="TYPE")
@click.argument("target_id", metavar="TARGET")
@click.option(
    "--priority",
    type=click.IntRange(1, 10),
    default=DEFAULT_PRIORITY,
    show_default=True,
    help="1 (highest) to 10 (lowest).",
)
@click.option(
    "--metadata", metavar="JSON", callback=_metadata, help="A JSON object handed to the job."
)
@click.option(
    "--delay", type=click.FloatRange(min=0), metavar="SECONDS", help="Run no sooner than this."
)
@click.option("--max-retries", type=click.IntRange(min=0), help="Retries after the first attempt.")
@json_option
@pass_app
def enqueue(
    app: App,
    job_type: str,
    target_id: str,
    priority: int,
    metadata: dict[str, Any],
    delay: float | None,
    max_retries: int | None,
    as_json: bool,
) -> None:
    """Add a job and print its id.

    If an active job (pending, retry scheduled or processing) has the same TYPE and TARGET,
    nothing is added: its id is printed and a note says so.
    """

    async def main() -> tuple[int, bool]:
        async with app.open_queue(create=True) as queue:
            job_id = await queue.enqueue(
                job_type,
                target_id,
                priority=priority,
                metadata=metadata,
                delay=delay,
                max_retries=max_retries,
            )
            return int(job_id), job_id.created

    job_id, created = run(main())
    if as_json:
        echo_json({"id": job_id, "created": created})
        return
    click.echo(job_id)
    if not created:
        click.echo(
            f"job {job_id} is already active for ({job_type}, {target_id}): nothing enqueued",
            err=True,
        )


def _job_rows(jobs: list[Job]) -> list[list[Any]]:
    return [
        [
            job.id,
            job.job_type,
            shorten(job.target_id, 32),
            job.status.value,
            job.priority,
            f"{job.retry_count}/{job.max_retries}",
            when(job.created_at),
            shorten(job.error_message, 50),
        ]
        for job in jobs
    ]


_JOB_HEADERS = ["ID", "TYPE", "TARGET", "STATUS", "PRI", ">RETRIES", "CREATED (UTC)", "ERROR"]


def _echo_jobs(jobs: list[Job], as_json: bool, empty: str) -> None:
    if as_json:
        echo_json([job.to_dict() for job in jobs])
    elif jobs:
        click.echo(table(_JOB_HEADERS, _job_rows(jobs)))
    else:
        click.echo(empty)


@click.command("jobs")
@click.option(
    "--status",
    "statuses",
    type=click.Choice(_STATUSES),
    multiple=True,
    help="Only jobs in this status (repeat for several).",
)
@click.option("--type", "job_type", metavar="TYPE", help="Only jobs of this type.")
@limit_option
@json_option
@pass_app
def list_jobs(
    app: App, statuses: tuple[str, ...], job_type: str | None, limit: int, as_json: bool
) -> None:
    """List jobs, newest first."""

    async def main() -> list[Job]:
        async with app.open_queue() as queue:
            return await queue.list_jobs(status=statuses or None, job_type=job_type, limit=limit)

    _echo_jobs(run(main()), as_json, "no jobs")


def _event_detail(event: JobEvent) -> str | None:
    if event.error is not None:
        return shorten(event.error, 60)
    if event.event in (JobEventType.RETRY_SCHEDULED, JobEventType.ENQUEUED) and event.run_at:
        return f"run at {when(event.run_at)}" if event.run_at > event.at else None
    return None


def _echo_job(job: Job, history: list[JobEvent]) -> None:
    record = job.to_dict()
    record["metadata"] = json.dumps(job.metadata)
    width = max(len(name) for name in record)
    for name, value in record.items():
        shown = when(getattr(job, name)) if name.endswith("_at") else cell_text(value)
        click.echo(f"{name.ljust(width)}  {shown}")
    click.echo("")
    if not history:
        click.echo("history: none recorded")
        return
    rows = [
        [when(e.at), e.event.value, e.status.value, e.worker_id, _event_detail(e)] for e in history
    ]
    click.echo(table(["AT (UTC)", "EVENT", "STATUS", "WORKER", "DETAIL"], rows))


@click.command("job")
@click.argument("job_id", type=int)
@json_option
@pass_app
def show_job(app: App, job_id: int, as_json: bool) -> None:
    """Show one job and its history."""

    async def main() -> tuple[Job, list[JobEvent]]:
        async with app.open_queue() as queue:
            job = await _existing_job(queue, job_id)
            return job, await queue.get_job_history(job_id)

    job, history = run(main())
    if as_json:
        echo_json({"job": job.to_dict(), "history": [event.to_dict() for event in history]})
    else:
        _echo_job(job, history)


async def _existing_job(queue: JobQueue, job_id: int) -> Job:
    job = await queue.get_job(job_id)
    if job is None:
        raise CLIError(f"no job with id {job_id}")
    return job


@click.command()
@limit_option
@json_option
@pass_app
def failed(app: App, limit: int, as_json: bool) -> None:
    """List failed jobs (retries spent), newest first, with their last error."""

    async def main() -> list[Job]:
        async with app.open_queue() as queue:
            return await queue.get_failed_jobs(limit=limit)

    _echo_jobs(run(main()), as_json, "no failed jobs")


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option("--all-failed", is_flag=True, help="Retry every failed job.")
@click.option("--type", "job_type", metavar="TYPE", help="With --all-failed: only this type.")
@pass_app
def retry(app: App, job_id: int | None, all_failed: bool, job_type: str | None) -> None:
    """Move a failed or cancelled job back to pending (retries reset).

    Give a JOB_ID, or --all-failed (optionally with --type) for every failed job.
    """
    if (job_id is None) == (not all_failed):
        raise click.UsageError("give either a JOB_ID or --all-failed")
    if job_type is not None and not all_failed:
        raise click.UsageError("--type goes with --all-failed")
    if job_id is not None:
        run(_retry_one(app, job_id))
        click.echo(f"job {job_id} is pending again")
        return

    async def main() -> tuple[int, int]:
        async with app.open_queue() as queue:
            return await queue.retry_failed_jobs(job_type)

    retried, skipped = run(main())
    message = f"retried {plural(retried, 'failed job')}"
    if skipped:
        message += f"; {skipped} left failed: an active job holds the same type and target"
    click.echo(message)


async def _retry_one(app: App, job_id: int) -> None:
    async with app.open_queue() as queue:
        if await queue.retry_job(job_id):
            return
        job = await _existing_job(queue, job_id)
        if job.status not in _RETRYABLE:
            raise CLIError(
                f"job {job_id} is {job.status.value}; only failed or cancelled jobs can be retried"
            )
        raise CLIError(
            f"job {job_id} not retried: an active job holds ({job.job_type}, {job.target_id})"
        )


@click.command()
@click.argument("job_id", type=int)
@pass_app
def cancel(app: App, job_id: int) -> None:
    """Cancel a pending (or retry-scheduled) job."""

    async def main() -> None:
        async with app.open_queue() as queue:
            if await queue.cancel_job(job_id):
                return
            job = await _existing_job(queue, job_id)
            if job.status not in READY_STATUSES:
                raise CLIError(
                    f"job {job_id} is {job.status.value}; only pending or retry_scheduled "
                    "jobs can be cancelled"
                )
            raise CLIError(f"job {job_id} could not be cancelled; try again")  # it just moved

    run(main())
    click.echo(f"job {job_id} cancelled")


@click.command()
@pass_app
def recover(app: App) -> None:
    """Take back jobs whose lease expired (their worker crashed or hung)."""

    async def main() -> int:
        async with app.open_queue() as queue:
            return await queue.recover_stale_jobs()

    click.echo(f"recovered {plural(run(main()), 'stale job')}")


@click.command()
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    help="Age in days (default: cleanup_after_days, QUEUE_CLEANUP_AFTER_DAYS, 7).",
)
@pass_app
def cleanup(app: App, days: float | None) -> None:
    """Delete completed and cancelled jobs (and their history) finished long ago.

    Failed jobs stay until retried.
    """

    async def main() -> tuple[int, float]:
        async with app.open_queue() as queue:
            deleted = await queue.cleanup_old_jobs(days)
            return deleted, queue.settings.cleanup_after_days if days is None else days

    deleted, age = run(main())
    click.echo(f"deleted {plural(deleted, 'finished job')} older than {age:g} days")
