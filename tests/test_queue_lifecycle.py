"""JobQueue lifecycle: lazy open, idempotent open/close, closed-queue errors, settings, open errors."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from support import db_exists, is_postgres, query

import asyncqueue
from asyncqueue import (
    AsyncQueueError,
    ConfigurationError,
    DatabaseOpenError,
    JobQueue,
    JobStatus,
    ManualClock,
    QueueClosedError,
    SchemaVersionError,
    ValidationError,
)
from asyncqueue.storage.postgres_sql import SCHEMA_VERSION as PG_SCHEMA_VERSION
from asyncqueue.storage.sqlite_sql import SCHEMA_VERSION

ENV_VARS = (
    "QUEUE_DB_PATH",
    "QUEUE_RETRY_BASE_DELAY",
    "QUEUE_RETRY_MULTIPLIER",
    "QUEUE_RETRY_MAX_DELAY",
    "QUEUE_RETRY_JITTER",
    "QUEUE_JOB_TIMEOUT_MINUTES",
    "QUEUE_MAX_RETRIES",
    "QUEUE_CLEANUP_AFTER_DAYS",
    "QUEUE_SYNCHRONOUS",
    "QUEUE_BUSY_TIMEOUT",
    "QUEUE_MAX_METADATA_BYTES",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def count_rows(path: Path | str) -> int:
    rows: int = query(path, "SELECT count(*) FROM jobs")[0][0]
    return rows


# -- open / close ---------------------------------------------------------------------


async def test_constructor_does_not_touch_the_file(db_path: Path) -> None:
    queue = JobQueue(db_path)

    assert not queue.is_open
    assert queue.path == str(db_path)
    assert not db_exists(db_path)
    assert is_postgres(db_path) or list(db_path.parent.iterdir()) == []


def test_constructor_works_without_an_event_loop(db_path: Path) -> None:
    queue = JobQueue(db_path)

    assert not queue.is_open
    assert not db_exists(db_path)


async def test_open_creates_the_schema_and_is_idempotent(db_path: Path) -> None:
    queue = JobQueue(db_path)

    assert await queue.open() is queue
    assert await queue.open() is queue
    assert queue.is_open
    assert db_exists(db_path)
    if is_postgres(db_path):
        assert query(db_path, "SELECT max(version) FROM schema_version") == [(PG_SCHEMA_VERSION,)]
    else:
        with closing(sqlite3.connect(db_path)) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    await queue.close()


async def test_concurrent_opens_share_one_open(db_path: Path) -> None:
    queue = JobQueue(db_path)

    results = await asyncio.gather(queue.open(), queue.open(), queue.enqueue("t", "1"))

    assert results[0] is queue
    assert results[1] is queue
    assert int(results[2]) == 1
    assert (await queue.get_queue_stats()).total_jobs == 1
    await queue.close()


async def test_close_is_idempotent(db_path: Path) -> None:
    queue = JobQueue(db_path)
    await queue.open()

    await queue.close()
    await queue.close()

    assert not queue.is_open


async def test_close_commits_pending_writes(db_path: Path) -> None:
    queue = JobQueue(db_path)
    await queue.enqueue_many([{"job_type": "t", "target_id": str(i)} for i in range(20)])

    await queue.close()

    assert count_rows(db_path) == 20


async def test_close_of_a_never_opened_queue_does_not_create_the_file(db_path: Path) -> None:
    queue = JobQueue(db_path)

    await queue.close()

    assert not db_exists(db_path)
    with pytest.raises(QueueClosedError):
        await queue.open()
    assert not db_exists(db_path)


async def test_async_with_opens_and_closes(db_path: Path) -> None:
    async with JobQueue(db_path) as queue:
        assert queue.is_open
        job_id = await queue.enqueue("t", "1")

    assert not queue.is_open
    with pytest.raises(QueueClosedError):
        await queue.get_job(job_id)
    assert count_rows(db_path) == 1


async def test_async_with_closes_when_the_body_raises(db_path: Path) -> None:
    queue = JobQueue(db_path)

    async def use_then_fail() -> None:
        async with queue:
            await queue.enqueue("t", "1")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await use_then_fail()

    assert not queue.is_open
    assert count_rows(db_path) == 1


async def test_enqueue_on_a_never_opened_queue_opens_it(db_path: Path) -> None:
    queue = JobQueue(db_path)

    job_id = await queue.enqueue("t", "1")

    assert queue.is_open
    assert job_id.created
    job = await queue.get_job(job_id)
    assert job is not None
    assert job.status is JobStatus.PENDING
    await queue.close()


@pytest.mark.parametrize(
    "first_use",
    [
        pytest.param(lambda q: q.get_queue_stats(), id="get_queue_stats"),
        pytest.param(lambda q: q.get_job(1), id="get_job"),
        pytest.param(lambda q: q.list_jobs(), id="list_jobs"),
        pytest.param(lambda q: q.cleanup_old_jobs(), id="cleanup_old_jobs"),
        pytest.param(lambda q: q.recover_stale_jobs(), id="recover_stale_jobs"),
    ],
)
async def test_reads_and_maintenance_also_open_a_never_opened_queue(
    db_path: Path, first_use: Callable[[JobQueue], Awaitable[Any]]
) -> None:
    queue = JobQueue(db_path)

    await first_use(queue)

    assert queue.is_open
    assert db_exists(db_path)
    await queue.close()


async def test_invalid_enqueue_on_a_never_opened_queue_neither_opens_nor_creates(
    db_path: Path,
) -> None:
    queue = JobQueue(db_path)

    with pytest.raises(ValueError, match="priority"):
        await queue.enqueue("t", "1", priority=0)

    assert not queue.is_open
    assert not db_exists(db_path)


CLOSED_QUEUE_CALLS: list[Any] = [
    pytest.param(lambda q: q.open(), id="open"),
    pytest.param(lambda q: q.enqueue("t", "1"), id="enqueue"),
    pytest.param(lambda q: q.enqueue_many([{"job_type": "t", "target_id": "1"}]), id="many"),
    pytest.param(lambda q: q.get_job(1), id="get_job"),
    pytest.param(lambda q: q.get_queue_stats(), id="get_queue_stats"),
    pytest.param(lambda q: q.get_failed_jobs(), id="get_failed_jobs"),
    pytest.param(lambda q: q.list_jobs(), id="list_jobs"),
    pytest.param(lambda q: q.cancel_job(1), id="cancel_job"),
    pytest.param(lambda q: q.retry_job(1), id="retry_job"),
    pytest.param(lambda q: q.cleanup_old_jobs(), id="cleanup_old_jobs"),
    pytest.param(lambda q: q.recover_stale_jobs(), id="recover_stale_jobs"),
]


@pytest.mark.parametrize("call", CLOSED_QUEUE_CALLS)
async def test_using_a_closed_queue_raises_queue_closed_error(
    db_path: Path, call: Callable[[JobQueue], Awaitable[Any]]
) -> None:
    queue = JobQueue(db_path)
    await queue.enqueue("t", "1")
    await queue.close()

    with pytest.raises(QueueClosedError, match=str(db_path)) as info:
        await call(queue)

    assert isinstance(info.value, AsyncQueueError)
    assert count_rows(db_path) == 1


@pytest.mark.parametrize("call", CLOSED_QUEUE_CALLS)
async def test_using_a_queue_closed_before_it_was_opened_raises(
    db_path: Path, call: Callable[[JobQueue], Awaitable[Any]]
) -> None:
    queue = JobQueue(db_path)
    await queue.close()

    with pytest.raises(QueueClosedError):
        await call(queue)

    assert not db_exists(db_path)


async def test_enqueue_many_of_nothing_on_a_closed_queue_raises(db_path: Path) -> None:
    queue = JobQueue(db_path)
    await queue.open()
    await queue.close()

    with pytest.raises(QueueClosedError):
        await queue.enqueue_many([])


async def test_a_closed_queue_stays_closed_and_a_new_queue_sees_its_data(
    db_path: Path, clock: ManualClock
) -> None:
    first = JobQueue(db_path, clock=clock)
    job_id = await first.enqueue("t", "1", metadata={"k": "v"})
    await first.close()

    with pytest.raises(QueueClosedError):
        await first.open()
    assert not first.is_open

    async with JobQueue(db_path, clock=clock) as second:
        job = await second.get_job(job_id)
        assert job is not None
        assert job.metadata == {"k": "v"}
        again = await second.enqueue("t", "1")
        assert again == job_id
        assert not again.created
        assert (await second.enqueue("t", "2")).created
    assert count_rows(db_path) == 2


async def test_two_open_queues_on_one_file_see_each_others_writes(db_path: Path) -> None:
    async with JobQueue(db_path) as a, JobQueue(db_path) as b:
        job_id = await a.enqueue("t", "1")
        job = await b.get_job(job_id)
        assert job is not None
        duplicate = await b.enqueue("t", "1")
        assert duplicate == job_id
        assert not duplicate.created


async def test_a_failed_open_can_be_retried_once_the_cause_is_fixed(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    queue = JobQueue(path)

    with pytest.raises(DatabaseOpenError):
        await queue.open()
    assert not queue.is_open

    path.unlink()
    await queue.open()
    assert queue.is_open
    assert (await queue.enqueue("t", "1")).created
    await queue.close()


# -- settings -------------------------------------------------------------------------


def test_default_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    queue = JobQueue()
    s = queue.settings

    assert queue.path == "asyncqueue.db"
    assert s.retry_base_delay == 1.0
    assert s.retry_backoff_multiplier == 2.0
    assert s.retry_max_delay == 3600.0
    assert s.job_timeout_minutes == 30
    assert s.max_retries == 3
    assert s.cleanup_after_days == 7
    assert not (tmp_path / "asyncqueue.db").exists()


def test_settings_come_from_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_path = tmp_path / "from-env.db"
    monkeypatch.setenv("QUEUE_DB_PATH", str(env_path))
    monkeypatch.setenv("QUEUE_RETRY_BASE_DELAY", "2.5")
    monkeypatch.setenv("QUEUE_RETRY_MULTIPLIER", "3")
    monkeypatch.setenv("QUEUE_JOB_TIMEOUT_MINUTES", "0.5")
    monkeypatch.setenv("QUEUE_CLEANUP_AFTER_DAYS", "1.5")
    monkeypatch.setenv("QUEUE_MAX_RETRIES", " 7 ")

    s = JobQueue().settings

    assert s.path == str(env_path)
    assert s.retry_base_delay == 2.5
    assert s.retry_backoff_multiplier == 3.0
    assert s.job_timeout_minutes == 0.5
    assert s.lease_seconds == 30.0
    assert s.cleanup_after_days == 1.5
    assert s.max_retries == 7


def test_explicit_arguments_win_over_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUEUE_DB_PATH", str(tmp_path / "from-env.db"))
    monkeypatch.setenv("QUEUE_RETRY_BASE_DELAY", "2.5")
    monkeypatch.setenv("QUEUE_RETRY_MULTIPLIER", "3")
    monkeypatch.setenv("QUEUE_JOB_TIMEOUT_MINUTES", "0.5")
    monkeypatch.setenv("QUEUE_CLEANUP_AFTER_DAYS", "1.5")
    monkeypatch.setenv("QUEUE_MAX_RETRIES", "7")
    explicit = tmp_path / "explicit.db"

    s = JobQueue(
        explicit,
        retry_base_delay=0.25,
        retry_backoff_multiplier=1.5,
        job_timeout_minutes=2,
        cleanup_after_days=3,
        max_retries=0,
    ).settings

    assert s.path == str(explicit)
    assert s.retry_base_delay == 0.25
    assert s.retry_backoff_multiplier == 1.5
    assert s.job_timeout_minutes == 2
    assert s.cleanup_after_days == 3
    assert s.max_retries == 0


def test_empty_environment_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_MAX_RETRIES", "")
    monkeypatch.setenv("QUEUE_RETRY_BASE_DELAY", "  ")

    s = JobQueue("x.db").settings

    assert s.max_retries == 3
    assert s.retry_base_delay == 1.0


async def test_queue_db_path_is_where_the_queue_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_path = tmp_path / "env.db"
    monkeypatch.setenv("QUEUE_DB_PATH", str(env_path))

    async with JobQueue() as queue:
        await queue.enqueue("t", "1")

    assert count_rows(env_path) == 1


async def test_env_max_retries_is_the_default_for_new_jobs(
    monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    monkeypatch.setenv("QUEUE_MAX_RETRIES", "5")

    async with JobQueue(db_path) as queue:
        job = await queue.get_job(await queue.enqueue("t", "1"))

    assert job is not None
    assert job.max_retries == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retry_base_delay": -1},
        {"retry_base_delay": float("nan")},
        {"retry_base_delay": "1"},
        {"retry_base_delay": True},
        {"retry_backoff_multiplier": 0.5},
        {"retry_backoff_multiplier": float("inf")},
        {"retry_max_delay": -0.1},
        {"job_timeout_minutes": 0},
        {"job_timeout_minutes": -5},
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"max_retries": "3"},
        {"cleanup_after_days": -1},
        {"cleanup_after_days": float("nan")},
        {"synchronous": "OFF"},
        {"busy_timeout": -1},
        {"busy_retries": 0},
        {"read_connections": 0},
        {"max_metadata_bytes": 1},
        {"retry_jitter": "yes"},
    ],
    ids=repr,
)
def test_invalid_settings_raise_configuration_error_at_construction(
    db_path: Path, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        JobQueue(db_path, **kwargs)

    assert isinstance(info.value, AsyncQueueError)
    assert isinstance(info.value, ValueError)
    assert not db_exists(db_path)


@pytest.mark.parametrize("path", [":memory:", "", 123])
def test_invalid_paths_raise_configuration_error(path: Any) -> None:
    with pytest.raises(ConfigurationError):
        JobQueue(path)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUEUE_RETRY_BASE_DELAY", "fast"),
        ("QUEUE_RETRY_BASE_DELAY", "-1"),
        ("QUEUE_RETRY_BASE_DELAY", "nan"),
        ("QUEUE_RETRY_MULTIPLIER", "0.5"),
        ("QUEUE_RETRY_MULTIPLIER", "x2"),
        ("QUEUE_JOB_TIMEOUT_MINUTES", "0"),
        ("QUEUE_JOB_TIMEOUT_MINUTES", "ten"),
        ("QUEUE_CLEANUP_AFTER_DAYS", "-2"),
        ("QUEUE_CLEANUP_AFTER_DAYS", "inf"),
        ("QUEUE_MAX_RETRIES", "1.5"),
        ("QUEUE_MAX_RETRIES", "-1"),
        ("QUEUE_MAX_RETRIES", "three"),
        ("QUEUE_DB_PATH", ":memory:"),
    ],
)
def test_invalid_environment_values_raise_configuration_error_at_construction(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigurationError):
        JobQueue() if name == "QUEUE_DB_PATH" else JobQueue("unused.db")


def test_unparsable_environment_value_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUEUE_MAX_RETRIES", "three")

    with pytest.raises(ConfigurationError, match="QUEUE_MAX_RETRIES"):
        JobQueue("unused.db")


def test_an_explicit_argument_shields_an_invalid_environment_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUEUE_MAX_RETRIES", "three")

    assert JobQueue("unused.db", max_retries=2).settings.max_retries == 2


# -- open errors ----------------------------------------------------------------------


async def test_opening_a_file_that_is_not_sqlite_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    garbage = bytes(range(256)) * 64
    path.write_bytes(garbage)
    queue = JobQueue(path)

    with pytest.raises(DatabaseOpenError) as info:
        await queue.open()

    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    assert not queue.is_open
    assert path.read_bytes() == garbage


async def test_enqueue_on_a_file_that_is_not_sqlite_raises_open_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"\x00garbage\xff" * 500)

    with pytest.raises(DatabaseOpenError, match=str(path)):
        await JobQueue(path).enqueue("t", "1")


@pytest.mark.parametrize(
    "make_path",
    [
        pytest.param(lambda tmp: Path("/proc/asyncqueue-test.db"), id="proc"),
        pytest.param(lambda tmp: tmp / "no-such-dir" / "queue.db", id="missing-directory"),
    ],
)
async def test_opening_an_unwritable_location_names_the_path(
    tmp_path: Path, make_path: Callable[[Path], Path]
) -> None:
    path = make_path(tmp_path)
    queue = JobQueue(path)
    threads_before = set(threading.enumerate())

    with pytest.raises(DatabaseOpenError) as info:
        await queue.open()

    assert str(path) in str(info.value)
    assert not queue.is_open
    assert not path.exists()
    join_new_threads(threads_before)


def join_new_threads(before: set[threading.Thread]) -> None:
    """Wait for any thread a failed open might leave behind, so later tests start clean."""
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=10)


FAILED_OPENS = """
import asyncio, sys
from asyncqueue import DatabaseOpenError, JobQueue

async def main(path):
    try:
        await JobQueue(path).open()
    except DatabaseOpenError:
        pass

for _ in range(20):
    asyncio.run(main(sys.argv[1]))
"""


def test_a_failed_open_leaves_no_thread_behind_to_outlive_the_event_loop(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FAILED_OPENS, str(tmp_path / "no-such-dir" / "queue.db")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(asyncqueue.__file__).resolve().parent.parent,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Exception in thread" not in result.stderr


def make_sqlite_file(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()


async def test_opening_a_database_with_a_newer_schema_raises_schema_version_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "newer.db"
    make_sqlite_file(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    queue = JobQueue(path)

    with pytest.raises(SchemaVersionError) as info:
        await queue.open()

    assert isinstance(info.value, DatabaseOpenError)
    assert str(path) in str(info.value)
    assert not queue.is_open
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


async def test_opening_a_queue_database_written_by_a_newer_library_raises(
    db_path: Path,
) -> None:
    async with JobQueue(db_path) as queue:
        await queue.enqueue("t", "1")
    if is_postgres(db_path):
        query(db_path, f"UPDATE schema_version SET version = {PG_SCHEMA_VERSION + 5}")
    else:
        make_sqlite_file(db_path, f"PRAGMA user_version = {SCHEMA_VERSION + 5}")

    with pytest.raises(SchemaVersionError, match=re.escape(str(db_path))):
        await JobQueue(db_path).open()
    assert count_rows(db_path) == 1


async def test_opening_a_sqlite_file_holding_other_tables_names_the_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.db"
    make_sqlite_file(
        path,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO users VALUES (1, 'a')",
    )
    queue = JobQueue(path)

    with pytest.raises(DatabaseOpenError) as info:
        await queue.open()

    assert not isinstance(info.value, SchemaVersionError)
    assert str(path) in str(info.value)
    assert "users" in str(info.value)
    assert not queue.is_open
    with closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"users"}
        assert conn.execute("SELECT * FROM users").fetchall() == [(1, "a")]


async def test_refusing_a_foreign_sqlite_file_leaves_its_journal_mode_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.db"
    make_sqlite_file(path, "CREATE TABLE users (id INTEGER PRIMARY KEY)")

    with pytest.raises(DatabaseOpenError):
        await JobQueue(path).open()

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


async def test_opening_a_sqlite_file_of_another_application_id_names_the_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "other-app.db"
    make_sqlite_file(path, "PRAGMA application_id = 12345")

    with pytest.raises(DatabaseOpenError, match=str(path)):
        await JobQueue(path).open()


async def test_get_jobs_reads_several_in_the_order_asked_and_skips_unknown_ids(
    queue: JobQueue,
) -> None:
    ids = [await queue.enqueue("t", f"x{i}") for i in range(5)]
    asked = [ids[3], 999, ids[0], ids[3]]
    jobs = await queue.get_jobs(asked)
    assert [job.id for job in jobs] == [ids[3], ids[0], ids[3]]
    assert jobs[1] == await queue.get_job(ids[0])
    assert await queue.get_jobs([]) == []
    with pytest.raises(TypeError):
        await queue.get_jobs(["1"])  # type: ignore[list-item]


@pytest.mark.parametrize("job_id", [2**63, -(2**63) - 1, 2**70])
async def test_an_id_beyond_64_bits_is_refused_by_every_verb_taking_one(
    queue: JobQueue, job_id: int
) -> None:
    await queue.enqueue("t", "x")
    for verb in (queue.get_job, queue.cancel_job, queue.retry_job, queue.get_job_history):
        with pytest.raises(ValidationError, match="64 bits"):
            await verb(job_id)
    with pytest.raises(ValidationError, match="64 bits"):
        await queue.get_jobs([1, job_id])
    with pytest.raises(ValidationError, match="64 bits"):
        await queue.list_jobs(before_id=job_id)
    assert (await queue.get_queue_stats()).pending_jobs == 1
    assert await queue.get_job(2**63 - 1) is None  # the largest id is a valid one


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 2**31},
        {"limit": 2**63},
        {"target_id": "a\x00b"},
        {"target_id": "a\udcffb"},
        {"error_message": "boom\x00"},
        {"error_message": "\udcff"},
    ],
)
async def test_listing_arguments_neither_database_can_take_are_refused_alike(
    queue: JobQueue, kwargs: dict[str, Any]
) -> None:
    await queue.enqueue("t", "x")
    with pytest.raises(ValidationError):
        await queue.list_jobs(**kwargs)
    if "limit" in kwargs:
        with pytest.raises(ValidationError):
            await queue.get_failed_groups(kwargs["limit"])
    assert len(await queue.list_jobs(limit=2**31 - 1)) == 1


async def test_an_empty_status_list_lists_every_status(queue: JobQueue) -> None:
    first = await queue.enqueue("t", "a")
    await queue.enqueue("t", "b")
    assert await queue.cancel_job(first)
    assert [job.target_id for job in await queue.list_jobs(status=[])] == ["b", "a"]


@pytest.mark.parametrize("seconds", [0, -5, float("nan"), float("inf"), 1e300, True, "60"])
async def test_renewing_for_a_bad_lease_length_is_refused_and_changes_nothing(
    queue: JobQueue, seconds: object
) -> None:
    await queue.enqueue("t", "x")
    [held] = await queue.claim("w", limit=1)
    before = await queue.get_job(held.id)
    with pytest.raises(ValidationError, match="lease_seconds"):
        await queue.renew_leases([held], lease_seconds=seconds)  # type: ignore[arg-type]
    assert await queue.get_job(held.id) == before
    assert await queue.renew_leases([held], lease_seconds=60) == {held.id}
