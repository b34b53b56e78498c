"""Choosing the backend from the queue's path: a ``postgresql://`` URL or a SQLite file."""

from __future__ import annotations

from asyncqueue.config import QueueSettings
from asyncqueue.errors import ConfigurationError
from asyncqueue.storage.base import JobStorage


def storage_for(settings: QueueSettings) -> JobStorage:
    """The backend ``settings.path`` names; nothing is opened yet.

    Raises:
        ConfigurationError: a PostgreSQL URL without asyncpg installed.
    """
    if settings.is_postgres:
        try:
            from asyncqueue.storage.postgres import PostgresStorage
        except ImportError as exc:
            raise ConfigurationError(
                "a postgresql:// queue needs asyncpg: pip install 'asyncqueue[postgres]'"
            ) from exc
        return PostgresStorage(settings)
    from asyncqueue.storage.sqlite import SQLiteStorage

    return SQLiteStorage(settings)
