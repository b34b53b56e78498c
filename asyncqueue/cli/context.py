"""What every command shares: the queue ``--db`` names, running a command's coroutine, and
errors as one line on stderr.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from asyncqueue.errors import AsyncQueueError, ConfigurationError, ValidationError
from asyncqueue.queue import JobQueue

T = TypeVar("T")

#: Exit status of a command that failed (usage errors exit 2, as click's own do).
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CLIError(click.ClickException):
    """A failure the user can act on: ``Error: message`` on stderr, then exit status 1."""

    exit_code = EXIT_FAILURE


class CLIUsageError(CLIError):
    """Like :class:`CLIError` for a bad argument or setting: exit status 2, one line."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True, slots=True)
class App:
    """The global options, handed to every command.

    Attributes:
        db: the ``--db`` path or ``postgresql://`` URL; None falls back to ``QUEUE_DB_PATH``,
            then the default.
    """

    db: str | None

    def queue(self) -> JobQueue:
        """A (not yet opened) queue on the chosen file; nothing touches the file yet."""
        return JobQueue(self.db)

    async def existing_queue(self) -> JobQueue:
        """Like :meth:`queue`, but the database must exist: commands that read never create
        one (a SQLite file, or the queue's tables in a PostgreSQL schema).

        Raises:
            CLIError: there is no queue database there.
        """
        queue = self.queue()
        if not await queue.exists():
            where = queue.location
            if queue.backend == "postgres":
                where = f"{where}, schema {queue.settings.schema}"
            raise CLIError(f"no queue database at {where}")
        return queue

    @asynccontextmanager
    async def open_queue(self, *, create: bool = False) -> AsyncIterator[JobQueue]:
        """The queue, open for the block; ``create`` allows a new database (file or schema)."""
        queue = self.queue() if create else await self.existing_queue()
        async with queue:
            yield queue


pass_app = click.make_pass_decorator(App)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; the library's errors become one line and an exit status.

    Invalid settings or arguments exit 2, everything else (database errors) 1.
    """
    try:
        return asyncio.run(main)
    except AsyncQueueError as exc:
        if isinstance(exc, ConfigurationError | ValidationError):
            raise CLIUsageError(str(exc)) from exc
        raise CLIError(str(exc)) from exc
