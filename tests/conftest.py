"""Shared fixtures: a fresh queue per test on each backend, and a manual clock.

Every test that uses ``backend`` (directly, or through ``db_path`` or ``queue``) runs once on
SQLite and once on PostgreSQL. PostgreSQL runs when ``ASYNCQUEUE_PG_URL`` is set or the
local server answers; each test gets a schema of its own (``QUEUE_DB_SCHEMA``, inherited by
the worker processes it starts), dropped afterwards. ``@pytest.mark.sqlite_only`` and
``@pytest.mark.postgres_only`` (on a test or a module) keep a test to one backend.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path

import pytest

from asyncqueue import JobQueue, ManualClock

PG_URL = os.environ.get("ASYNCQUEUE_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _in_fresh_loop(coro_factory: object) -> object:
    """Run a coroutine in a loop of its own thread (the test's loop may be running)."""
    result: list[object] = []

    def run() -> None:
        result.append(asyncio.run(coro_factory()))  # type: ignore[operator]

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0] if result else None


@cache
def postgres_available() -> bool:
    """Whether the PostgreSQL of ``PG_URL`` answers."""
    try:
        import asyncpg
    except ImportError:
        return False

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(PG_URL, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return bool(_in_fresh_loop(probe))


def drop_schema(schema: str) -> None:
    """Drop a test's schema and everything in it."""
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    _in_fresh_loop(drop)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    params = []
    if metafunc.definition.get_closest_marker("postgres_only") is None:
        params.append("sqlite")
    if metafunc.definition.get_closest_marker("sqlite_only") is None:
        skip = pytest.mark.skipif(
            not postgres_available(), reason=f"no PostgreSQL at {PG_URL} (ASYNCQUEUE_PG_URL)"
        )
        params.append(pytest.param("postgres", marks=skip))
    metafunc.parametrize("backend", params)


@pytest.fixture
def pg_schema(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """The test's PostgreSQL schema (None on SQLite), set as ``QUEUE_DB_SCHEMA``."""
    if backend != "postgres":
        yield None
        return
    schema = f"aq_test_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("QUEUE_DB_SCHEMA", schema)
    yield schema
    drop_schema(schema)


@pytest.fixture
def db_path(backend: str, tmp_path: Path, pg_schema: str | None) -> Path | str:
    """Where the test's queue lives: a SQLite file, or the PostgreSQL URL (fresh schema)."""
    if backend == "postgres":
        return PG_URL
    return tmp_path / "queue.db"


@pytest.fixture(autouse=True)
def exact_poll_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle workers read the queue every ``poll_interval`` exactly, not up to a tenth early:
    tests wait for that sleeper on their clock. tests/test_idle_worker.py covers the jitter."""
    monkeypatch.setattr("asyncqueue.queue.POLL_JITTER", 0.0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


@pytest.fixture
async def queue(db_path: Path, clock: ManualClock) -> AsyncIterator[JobQueue]:
    async with JobQueue(db_path, clock=clock, retry_base_delay=1.0) as q:
        yield q
