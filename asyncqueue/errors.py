"""The exceptions asyncqueue raises: one base class, each subclass says when it is raised."""

from __future__ import annotations

import os


class AsyncQueueError(Exception):
    """Base class of every exception raised by asyncqueue."""


class ConfigurationError(AsyncQueueError, ValueError):
    """Raised by ``JobQueue(...)`` and ``QueueWorker(...)`` for an invalid setting.

    Also raised for an invalid value in a ``QUEUE_*`` environment variable; the message names
    the variable.
    """


class ValidationError(AsyncQueueError, ValueError):
    """Raised by ``enqueue``/``enqueue_many`` for a bad argument, before anything is written."""


class ValidationTypeError(ValidationError, TypeError):
    """Raised by ``enqueue``/``enqueue_many`` for an argument of the wrong type.

    It is both a :class:`ValidationError` (so a ``ValueError``) and a ``TypeError``.
    """


class QueueClosedError(AsyncQueueError):
    """Raised when a ``JobQueue`` is used after ``close()``."""


class WorkerError(AsyncQueueError):
    """Raised by ``QueueWorker`` for misuse, such as starting a worker that is already running."""


class DatabaseError(AsyncQueueError):
    """Raised when the queue's database fails; ``path`` names the file or URL.

    The driver's exception, when there is one, is chained as ``__cause__``.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        super().__init__(f"{message} (database: {self.path})" if self.path else message)


class DatabaseOpenError(DatabaseError):
    """Raised by ``JobQueue.open()`` when the path is not a usable queue database.

    For example a file that is not a SQLite database, a read-only location, a missing
    directory, or a SQLite file whose tables belong to another application.
    """


class SchemaVersionError(DatabaseOpenError):
    """Raised by ``JobQueue.open()`` when the database was written by a newer asyncqueue."""


class DatabaseBusyError(DatabaseError):
    """Raised when the database stayed locked by another process past every retry.

    The total wait is bounded by ``busy_timeout * busy_retries`` plus the short backoff
    between tries (see ``JobQueue``).
    """


class UnsupportedOperationError(DatabaseError):
    """Raised by a maintenance verb that does not apply to the queue's backend.

    For example ``checkpoint``, ``backup`` and ``restore`` on PostgreSQL, whose own tools
    (``pg_dump``, ``pg_restore``, the server's checkpointer) do that work; the message says
    what to use instead.
    """


class RemoteError(AsyncQueueError):
    """Raised by ``RemoteQueue`` when the server refuses a request or answers nonsense.

    ``status`` is the HTTP status of the answer (None when there was none).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class RemoteAuthError(RemoteError):
    """Raised by ``RemoteQueue`` on 401 or 403: the token is missing, wrong, or lacks scope."""


class RemoteUnavailableError(RemoteError):
    """Raised by ``RemoteQueue`` when the server stayed unreachable past ``reconnect_seconds``.

    Outcomes it was sending are kept and go out with the next exchange.
    """
