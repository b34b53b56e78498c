"""The ``asyncqueue`` command: global options and the command list."""

from __future__ import annotations

import click

from asyncqueue import __version__
from asyncqueue.cli import database, jobs, serve, status, worker
from asyncqueue.cli.context import App
from asyncqueue.config import DEFAULT_DB_PATH, ENVIRONMENT_VARIABLES


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db",
    metavar="PATH",
    help=(
        f"The queue's database file, or a postgresql:// URL (default: "
        f"${ENVIRONMENT_VARIABLES['path']}, else {DEFAULT_DB_PATH})."
    ),
)
@click.version_option(__version__, message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Run workers, enqueue and inspect jobs, and maintain an asyncqueue database.

    Other QUEUE_* environment variables (QUEUE_BUSY_TIMEOUT, QUEUE_JOB_TIMEOUT_MINUTES, ...)
    apply as they do to JobQueue.
    """
    ctx.obj = App(db=db)


for command in (
    worker.worker,
    jobs.enqueue,
    status.stats,
    jobs.list_jobs,
    jobs.show_job,
    jobs.failed,
    jobs.retry,
    jobs.cancel,
    jobs.recover,
    jobs.cleanup,
    status.workers,
    database.db,
    serve.serve,
):
    cli.add_command(command)


def main() -> None:
    """The console script's entry point."""
    cli(prog_name="asyncqueue")
