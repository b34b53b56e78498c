"""The ``db`` commands: integrity check, checkpoint, vacuum, analyze, backup and restore."""

from __future__ import annotations

from pathlib import Path

import click

from asyncqueue.cli.context import App, CLIError, pass_app, run
from asyncqueue.cli.render import plural, size
from asyncqueue.queue import JobQueue
from asyncqueue.storage.postgres_maintenance import unsupported_message
from asyncqueue.storage.sqlite_maintenance import (
    BackupResult,
    CheckpointResult,
    RestoreResult,
    VacuumResult,
)


@click.group()
def db() -> None:
    """Maintain the database: check, checkpoint, vacuum, analyze, backup, restore.

    On PostgreSQL, check, vacuum and analyze work on the queue's schema; checkpoint, backup
    and restore are SQLite's and say what to use instead (pg_dump, pg_restore).
    """


@db.command()
@pass_app
def check(app: App) -> None:
    """Run SQLite's integrity check (PostgreSQL: the queue schema's tables, version and
    indexes); exit 1 if it finds a problem."""

    async def main() -> list[str]:
        queue = await app.existing_queue()
        return await queue.check_integrity()

    problems = run(main())
    if not problems:
        click.echo("ok")
        return
    for problem in problems:
        click.echo(problem)
    raise CLIError(f"integrity check found {plural(len(problems), 'problem')}")


@db.command()
@pass_app
def checkpoint(app: App) -> None:
    """Copy the write-ahead log into the database file and truncate it.

    Exits 1 if other connections kept it busy (try again when the queue is quieter).
    SQLite only: PostgreSQL checkpoints on its own.
    """
    _refuse_on_postgres(app, "checkpoint")

    async def main() -> CheckpointResult:
        queue = await app.existing_queue()
        return await queue.checkpoint()

    result = run(main())
    if result.busy:
        raise CLIError(
            f"checkpoint incomplete, the database was busy: {result.checkpointed_frames} of "
            f"{result.wal_frames} WAL frames copied, WAL not truncated"
        )
    if result.wal_frames < 0:
        click.echo("nothing to do: the database is not in WAL mode")
    else:
        click.echo(f"checkpointed {plural(result.wal_frames, 'WAL frame')}; WAL truncated")


@db.command()
@pass_app
def vacuum(app: App) -> None:
    """Rebuild the file without free pages. Holds the write lock while it runs."""

    async def main() -> VacuumResult:
        queue = await app.existing_queue()
        return await queue.vacuum()

    result = run(main())
    click.echo(f"vacuumed: {size(result.bytes_before)} -> {size(result.bytes_after)}")


@db.command()
@pass_app
def analyze(app: App) -> None:
    """Refresh the query planner's statistics."""

    async def main() -> None:
        queue = await app.existing_queue()
        await queue.analyze()

    run(main())
    click.echo("analyzed")


@db.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
@pass_app
def backup(app: App, path: Path, force: bool) -> None:
    """Write a consistent copy of the live database to PATH.

    Safe while workers run: SQLite's online backup API copies one moment's state, holding
    every job committed before the backup started. PATH is a self-contained SQLite file.
    On PostgreSQL use pg_dump.
    """
    _refuse_on_postgres(app, "backup")
    if path.exists() and not force:
        raise CLIError(f"{path} already exists; choose another path or pass --force")

    async def main() -> BackupResult:
        queue = await app.existing_queue()
        return await queue.backup(path, overwrite=force)

    result = run(main())
    click.echo(
        f"backed up to {result.path}: {size(result.bytes)} ({plural(result.pages, 'page')}) "
        f"in {result.seconds:.2f}s"
    )


@db.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Restore even while workers are active.")
@pass_app
def restore(app: App, path: Path, force: bool) -> None:
    """Replace the queue's content with the backup at PATH.

    The backup must pass the integrity check and be an asyncqueue database. Refuses while
    workers are active unless --force (then restart them). The content is written through
    SQLite's backup API, never by copying files under a live WAL. On PostgreSQL use
    pg_restore.
    """
    _refuse_on_postgres(app, "restore")
    if not path.is_file():
        raise CLIError(f"no backup file at {path}")

    async def main() -> RestoreResult:
        async with app.open_queue(create=True) as queue:
            active = (await queue.get_queue_stats()).active_workers
            if active and not force:
                raise CLIError(
                    f"refusing to restore: {plural(active, 'worker')} active on {queue.location}; "
                    "stop them first, or pass --force"
                )
            result = await queue.restore(path, force=force)
        # Opening again migrates a backup written by an older asyncqueue.
        async with JobQueue(queue.path):
            return result

    result = run(main())
    click.echo(f"restored {result.source}: {plural(result.jobs, 'job')}")


def _refuse_on_postgres(app: App, verb: str) -> None:
    queue = app.queue()
    if queue.backend == "postgres":
        raise CLIError(unsupported_message(verb, queue.settings.schema))
