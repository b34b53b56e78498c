"""Times the library cannot read back are never stored, and one stored anyway breaks no read.

Issue 13: ``enqueue(delay=timedelta.max)`` was accepted and then made every read of the queue
raise. Property tests drive delays, run times and settings around the bounds of
``asyncqueue.timebounds``; the last tests write out-of-range times into a database by hand
and read them through every read path, the command line's included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
import tempfile
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cli_helpers import cli, cli_json, ok, user_error, with_queue
from click.testing import CliRunner
from hypothesis import event, given, settings
from hypothesis import strategies as st
from support import is_postgres, query

from asyncqueue import (
    ConfigurationError,
    Job,
    JobEvent,
    JobQueue,
    JobStatus,
    ManualClock,
    RetryPolicy,
    ValidationError,
)
from asyncqueue.cli import cli as asyncqueue_cli
from asyncqueue.metrics import check_window
from asyncqueue.storage.base import WorkerRecord
from asyncqueue.timebounds import (
    MAX_SETTING_SECONDS,
    MAX_SPAN_SECONDS,
    MAX_TIME_TEXT,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    clamped,
    stored_datetime,
)

T = TypeVar("T")

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
#: A "now" in 2027, the conftest clock's.
NOW = 1_800_000_000.0

examples = settings(max_examples=50, deadline=None, database=None)


@contextlib.contextmanager
def _fresh_path() -> Iterator[Path]:
    """A database path of its own, for one hypothesis example (no function-scoped fixture)."""
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory) / "queue.db"


async def _outcome(call: Awaitable[T], error: type[Exception]) -> T | Exception:
    """What ``call`` returned, or the ``error`` it raised."""
    try:
        return await call
    except error as exc:
        return exc


def _invoke(path: Path, *args: str) -> Any:
    """A read command in this process, through click's runner; its JSON output."""
    result = CliRunner().invoke(asyncqueue_cli, ["--db", str(path), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def _assert_nothing_written(queue: JobQueue) -> None:
    assert await queue.list_jobs() == []
    assert (await queue.get_queue_stats()).total_jobs == 0


# -- the bounds themselves ----------------------------------------------------------------


def test_the_bounds_are_the_first_and_last_second_datetime_represents() -> None:
    assert datetime.fromtimestamp(MIN_TIMESTAMP, UTC) == EARLIEST
    assert datetime.fromtimestamp(MAX_TIMESTAMP, UTC) == LATEST
    assert LATEST.isoformat().replace("+00:00", "Z") == MAX_TIME_TEXT


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param(1e300, LATEST, id="huge"),
        pytest.param(1e15, LATEST, id="year-31-million"),
        pytest.param(math.inf, LATEST, id="inf"),
        pytest.param(10**30, LATEST, id="huge-int"),
        pytest.param(10**400, LATEST, id="int-beyond-float"),
        pytest.param(-1e300, EARLIEST, id="negative-huge"),
        pytest.param(-math.inf, EARLIEST, id="negative-inf"),
        pytest.param(math.nan, datetime(1970, 1, 1, tzinfo=UTC), id="nan"),
        pytest.param("abc", datetime(1970, 1, 1, tzinfo=UTC), id="text"),
        pytest.param(b"\x00", datetime(1970, 1, 1, tzinfo=UTC), id="blob"),
        pytest.param(MAX_TIMESTAMP, LATEST, id="latest"),
        pytest.param(MIN_TIMESTAMP, EARLIEST, id="earliest"),
        pytest.param(-1.5, datetime(1969, 12, 31, 23, 59, 58, 500000, tzinfo=UTC), id="1969"),
    ],
)
def test_a_stored_time_always_reads_back(stored: object, expected: datetime) -> None:
    assert stored_datetime(stored) == expected
    assert MIN_TIMESTAMP <= clamped(stored) <= MAX_TIMESTAMP


def test_job_and_event_rows_with_unreadable_times_are_clamped() -> None:
    row = {
        "id": 1,
        "job_type": "t",
        "target_id": "x",
        "status": "pending",
        "priority": 5,
        "retry_count": 0,
        "max_retries": 3,
        "attempts": 0,
        "metadata": "{}",
        "error_message": None,
        "worker_id": None,
        "created_at": math.nan,
        "run_at": 1e300,
        "started_at": -math.inf,
        "completed_at": None,
        "updated_at": "abc",
        "lease_expires_at": 10**20,
        "result": None,
        "lease_token": None,
    }
    job = Job.from_row(row)
    assert (job.run_at, job.started_at, job.lease_expires_at) == (LATEST, EARLIEST, LATEST)
    assert job.created_at == job.updated_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert job.completed_at is None
    event = JobEvent.from_row((1, "enqueued", "pending", math.inf, None, "t", None, -1e300, None))
    assert (event.at, event.run_at) == (LATEST, EARLIEST)


# -- input: delay and run_at ----------------------------------------------------------------


@st.composite
def _schedules(draw: st.DrawFn) -> tuple[float, dict[str, Any]]:
    """A queue clock's now and a ``delay`` or ``run_at``, often right around the bound."""
    now = draw(
        st.one_of(
            st.just(NOW),
            st.floats(MAX_TIMESTAMP - 1e6, MAX_TIMESTAMP),
            st.floats(MIN_TIMESTAMP, MAX_TIMESTAMP),
        )
    )
    room = MAX_TIMESTAMP - now
    delay = st.one_of(
        st.floats(max(0.0, room - 2.0), room + 2.0),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-1, max_value=10**400),
        st.timedeltas(),
        st.sampled_from([timedelta.max, 1e300, 1e15, 0, 0.0]),
    )
    offsets = st.sampled_from(
        [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))]
    )
    run_at = st.one_of(
        st.datetimes(timezones=offsets),
        st.sampled_from([datetime.max, datetime.min, LATEST.replace(tzinfo=None)]).map(
            lambda moment: moment.replace(tzinfo=UTC)
        ),
    )
    if draw(st.booleans()):
        return now, {"delay": draw(delay)}
    return now, {"run_at": draw(run_at)}


def _expected_run_at(now: float, schedule: dict[str, Any]) -> float | None:
    """The run time the job must get, or None where the input must be refused."""
    if "run_at" in schedule:
        timestamp: float = schedule["run_at"].timestamp()
        return timestamp if MIN_TIMESTAMP <= timestamp <= MAX_TIMESTAMP else None
    delay = schedule["delay"]
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(min(delay, 1e300))
    if math.isnan(seconds) or seconds < 0 or now + seconds > MAX_TIMESTAMP:
        return None
    return now + seconds


@examples
@given(schedule=_schedules(), many=st.booleans())
def test_a_schedule_is_refused_with_nothing_written_or_reads_back_everywhere(
    schedule: tuple[float, dict[str, Any]], many: bool
) -> None:
    now, arguments = schedule
    expected = _expected_run_at(now, arguments)
    (name,) = arguments
    event(f"{name} {'refused' if expected is None else 'accepted'}")

    async def enqueue(queue: JobQueue) -> int:
        if not many:
            return await queue.enqueue("t", "x", **arguments)
        items = [{"job_type": "t", "target_id": "ok"}, {"job_type": "t", "target_id": "x"}]
        items[1].update(arguments)
        return (await queue.enqueue_many(items))[1]

    async def body(path: Path) -> Job | None:
        async with JobQueue(path, clock=ManualClock(now)) as queue:
            outcome = await _outcome(enqueue(queue), ValidationError)
            if isinstance(outcome, Exception):
                assert expected is None, f"refused {arguments}: {outcome}"
                assert str(outcome).startswith(f"item 1: {name}" if many else name)
                await _assert_nothing_written(queue)
                return None
            assert expected is not None, f"accepted {arguments}"
            job = await queue.get_job(outcome)
            assert job is not None
            assert job.run_at == datetime.fromtimestamp(expected, UTC)
            assert job in await queue.list_jobs()
            return job

    with _fresh_path() as path:
        job = asyncio.run(body(path))
        if job is not None:
            assert _invoke(path, "job", str(job.id))["job"] == job.to_dict()
            assert job.to_dict() in _invoke(path, "jobs")


@pytest.mark.parametrize(
    "delay",
    [timedelta.max, 1e300, 1e15, 10**400, MAX_TIMESTAMP - NOW + 1],
    ids=["timedelta-max", "1e300", "1e15", "int-beyond-float", "one-second-late"],
)
async def test_issue_13_far_future_delay_is_refused(queue: JobQueue, delay: object) -> None:
    with pytest.raises(ValidationError, match=r"^delay .*9999-12-31T23:59:59Z"):
        await queue.enqueue("mail", "x", delay=delay)
    await _assert_nothing_written(queue)


@pytest.mark.parametrize("delay", [-(10**400), -1, -1e-9, -timedelta(seconds=1)])
async def test_a_negative_delay_is_refused_even_beyond_float(
    queue: JobQueue, delay: object
) -> None:
    with pytest.raises(ValidationError, match=r"^delay must be a finite number of seconds >= 0"):
        await queue.enqueue("mail", "x", delay=delay)
    await _assert_nothing_written(queue)


async def test_the_last_storable_second_is_accepted(queue: JobQueue) -> None:
    by_delay = await queue.enqueue("mail", "a", delay=MAX_TIMESTAMP - NOW)
    by_time = await queue.enqueue("mail", "b", run_at=LATEST)
    earliest = await queue.enqueue("mail", "c", run_at=EARLIEST)
    for job_id, run_at in ((by_delay, LATEST), (by_time, LATEST), (earliest, EARLIEST)):
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.run_at == run_at


async def test_run_at_outside_the_range_is_refused(queue: JobQueue) -> None:
    for run_at in (
        datetime.max.replace(tzinfo=UTC),
        datetime(9999, 12, 31, 20, tzinfo=timezone(timedelta(hours=-5))),
        datetime.min.replace(tzinfo=timezone(timedelta(hours=1))),
    ):
        with pytest.raises(ValidationError, match=r"^run_at .*0001-01-01T00:00:00Z to 9999"):
            await queue.enqueue("mail", "x", run_at=run_at)
    await _assert_nothing_written(queue)


async def test_enqueue_many_refuses_the_whole_batch_naming_the_item(queue: JobQueue) -> None:
    items = [{"job_type": "mail", "target_id": str(i)} for i in range(3)]
    items.append({"job_type": "mail", "target_id": "late", "delay": timedelta.max})
    with pytest.raises(ValidationError, match=r"^item 3: delay .*9999-12-31T23:59:59Z"):
        await queue.enqueue_many(items)
    await _assert_nothing_written(queue)


async def test_a_clock_at_the_bound_leaves_no_room_for_a_delay(db_path: Path) -> None:
    async with JobQueue(db_path, clock=ManualClock(MAX_TIMESTAMP)) as queue:
        job_id = await queue.enqueue("mail", "now", delay=0)
        with pytest.raises(ValidationError, match="at most 0 seconds from now"):
            await queue.enqueue("mail", "later", delay=1)
        assert [job.id for job in await queue.list_jobs()] == [job_id]


def test_cli_delay_out_of_range_exits_2_and_writes_nothing(db_path: Path) -> None:
    message = user_error(cli(db_path, "enqueue", "mail", "x", "--delay", "1e300"), code=2)
    assert message.startswith("delay 1e+300 would run the job after 9999-12-31T23:59:59Z")
    assert with_queue(db_path, lambda queue: queue.list_jobs()) == []
    assert ok(cli(db_path, "enqueue", "mail", "x", "--delay", "60")).strip().isdigit()


# -- settings that feed computed times -------------------------------------------------------

_SECONDS_AROUND_BOUND = st.one_of(
    st.floats(MAX_SETTING_SECONDS - 1e3, MAX_SETTING_SECONDS + 1e3),
    st.sampled_from([1e300, MAX_TIMESTAMP, 10**400]),
)
#: Per setting, values at and beyond its bound.
_EXTREMES = {
    "retry_base_delay": _SECONDS_AROUND_BOUND,
    "retry_max_delay": _SECONDS_AROUND_BOUND,
    "retry_backoff_multiplier": st.one_of(st.floats(1e300, 1e308), st.integers(1, 10**400)),
    "job_timeout_minutes": st.one_of(
        st.floats(MAX_SETTING_SECONDS / 60 - 10, MAX_SETTING_SECONDS / 60 + 10),
        st.sampled_from([1e300, 10**400]),
    ),
    "cleanup_after_days": st.floats(1e4, 1e308),
}


@st.composite
def _settings(draw: st.DrawFn) -> dict[str, Any]:
    """Ordinary values for the settings that feed computed times, one perhaps extreme."""
    values = {
        "retry_base_delay": draw(st.floats(0, 1e6)),
        "retry_max_delay": draw(st.floats(0, 1e6)),
        "retry_backoff_multiplier": draw(st.floats(1, 10)),
        "retry_jitter": draw(st.booleans()),
        "job_timeout_minutes": draw(st.floats(0.01, 1e3)),
        "cleanup_after_days": draw(st.floats(0, 1e4)),
    }
    extreme = draw(st.sampled_from([None, *_EXTREMES]))
    if extreme is not None:
        values[extreme] = draw(_EXTREMES[extreme])
    return values


def _refused_settings(values: dict[str, Any]) -> set[str]:
    """The settings that must be refused among ``values``."""
    limits = {
        "retry_base_delay": MAX_SETTING_SECONDS,
        "retry_max_delay": MAX_SETTING_SECONDS,
        "job_timeout_minutes": MAX_SETTING_SECONDS / 60,
        "retry_backoff_multiplier": 1e308,
    }
    return {name for name, limit in limits.items() if values[name] > limit}


async def _exercise(queue: JobQueue, window: float) -> None:
    """Every computed time: a lease, a retry's backoff, cleanup's cutoff, the metrics window."""
    job_id = await queue.enqueue("t", "x", max_retries=2)
    (claimed,) = await queue.claim("w", limit=1)
    leased = await queue.get_job(job_id)
    assert leased is not None
    assert leased.lease_expires_at is not None
    assert leased.lease_expires_at <= LATEST
    now = queue.clock.now()
    assert leased.lease_expires_at == stored_datetime(
        min(now + queue.settings.lease_seconds, MAX_TIMESTAMP)
    )
    assert await queue.fail_attempt(claimed, "boom") is JobStatus.RETRY_SCHEDULED
    job = await queue.get_job(job_id)
    assert job is not None
    # The backoff without jitter; jitter draws from its upper half.
    policy = queue.settings.retry_policy
    delay = RetryPolicy(policy.base_delay, policy.multiplier, policy.max_delay).delay_for(0)
    assert 0 <= delay <= queue.settings.retry_max_delay
    low = min(now + (delay / 2 if policy.jitter else delay), MAX_TIMESTAMP)
    high = min(now + delay, MAX_TIMESTAMP)
    assert low - 1e-3 <= job.run_at.timestamp() <= high + 1e-3
    assert [listed.id for listed in await queue.list_jobs()] == [job_id]
    assert len(await queue.get_job_history(job_id)) == 3
    assert await queue.cleanup_old_jobs() == 0
    metrics = await queue.get_metrics(window)
    assert metrics.window_seconds <= MAX_SPAN_SECONDS


@examples
@given(
    values=_settings(),
    now=st.sampled_from([NOW, MAX_TIMESTAMP - 60.0, MAX_TIMESTAMP]),
    window=st.one_of(st.floats(1, 1e6), st.sampled_from([1e300, 10**400, MAX_SPAN_SECONDS])),
)
def test_settings_are_refused_naming_them_or_every_computed_time_stays_readable(
    values: dict[str, Any], now: float, window: float
) -> None:
    refused = _refused_settings(values)
    event("refused" if refused else "accepted")

    with _fresh_path() as path:
        try:
            queue = JobQueue(path, clock=ManualClock(now), **values)
        except ConfigurationError as exc:
            error = str(exc)
        else:
            error = ""
        if error:
            assert refused, f"refused {values}: {error}"
            assert any(error.startswith(name) for name in refused), error
            return
        assert not refused, f"accepted {values}"

        async def body() -> None:
            async with queue:
                await _exercise(queue, window)

        asyncio.run(body())
        assert _invoke(path, "jobs")[0]["status"] == "retry_scheduled"


def test_settings_from_the_environment_are_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_RETRY_MAX_DELAY", "1e20")
    with pytest.raises(ConfigurationError, match=r"^retry_max_delay must be <= 3155760000"):
        JobQueue("queue.db")
    monkeypatch.delenv("QUEUE_RETRY_MAX_DELAY")
    monkeypatch.setenv("QUEUE_JOB_TIMEOUT_MINUTES", "1e300")
    with pytest.raises(ConfigurationError, match=r"^job_timeout_minutes must be <= 52596000"):
        JobQueue("queue.db")


@examples
@given(
    base=st.floats(0, MAX_SETTING_SECONDS),
    multiplier=st.one_of(st.floats(1, 1e308), st.integers(1, 10**300)),
    maximum=st.floats(0, MAX_SETTING_SECONDS),
    jitter=st.booleans(),
    retry_count=st.integers(0, 1_000_000),
)
def test_backoff_is_finite_and_never_past_max_delay(
    base: float, multiplier: float, maximum: float, jitter: bool, retry_count: int
) -> None:
    policy = RetryPolicy(base_delay=base, multiplier=multiplier, max_delay=maximum, jitter=jitter)
    delay = policy.delay_for(retry_count)
    assert 0 <= delay <= maximum
    if base == 0:
        assert delay == 0


def test_backoff_edges() -> None:
    # Once the power overflowed, a zero base delay used to give max_delay.
    assert RetryPolicy(base_delay=0, multiplier=1e308, max_delay=3600).delay_for(10) == 0
    huge = RetryPolicy(base_delay=1, multiplier=10**300, max_delay=3600, jitter=True)
    assert 1800 <= huge.delay_for(1_000_000) <= 3600


async def test_retry_and_lease_times_are_capped_at_the_bound(db_path: Path) -> None:
    clock = ManualClock(MAX_TIMESTAMP - 1.0)
    async with JobQueue(db_path, clock=clock, retry_base_delay=3600) as queue:
        await _exercise(queue, 60.0)
        (job,) = await queue.list_jobs()
        assert job.run_at == LATEST


async def test_cleanup_and_metrics_beyond_the_span_cover_everything(
    queue: JobQueue, clock: ManualClock
) -> None:
    await queue.enqueue("t", "done")
    (claimed,) = await queue.claim("w", limit=1)
    assert await queue.complete(claimed)
    for days in (1e300, math.inf, 10**400):
        assert await queue.cleanup_old_jobs(days) == 0, "nothing finished before year 1"
    for window in (1e300, 10**400):
        metrics = await queue.get_metrics(window)
        assert metrics.window_seconds == MAX_SPAN_SECONDS
        assert metrics.completed_in_window == 1
    assert check_window(60) == 60.0
    clock.advance(1)
    assert await queue.cleanup_old_jobs(0) == 1


# -- reading rows whose times were written out of range by hand ------------------------------

# (table, key, column, value) written by hand: each a time no datetime can hold.
_FIRST_EVENT_OF = "(SELECT min(id) FROM job_events WHERE job_id = {job})"

_BAD_TIMES = [
    ("jobs", 1, "run_at", "1e300"),
    ("jobs", 2, "created_at", "-1e300"),
    ("jobs", 3, "updated_at", "'abc'"),
    ("jobs", 3, "run_at", "-9e999"),  # SQLite reads 9e999 as infinity
    ("jobs", 4, "started_at", "-9e999"),  # completed: an infinite processing time
    ("jobs", 5, "lease_expires_at", "1000000000000000000"),
    ("jobs", 6, "run_at", "x'00'"),
    # The first recorded event of jobs 1 and 2 (on PostgreSQL the "enqueued" event is read
    # from the job's row, so that is the "claimed" one there).
    ("job_events", _FIRST_EVENT_OF.format(job=1), "at", "'abc'"),
    ("job_events", _FIRST_EVENT_OF.format(job=2), "run_at", "1e300"),
    ("workers", "'w1'", "last_heartbeat", "9e999"),
    ("workers", "'w1'", "started_at", "-1e300"),
]


#: PostgreSQL's spelling of the values above that are not plain numbers.
_PG_VALUES = {
    "'abc'": "'NaN'::float8",
    "x'00'": "'NaN'::float8",
    "-9e999": "'-Infinity'::float8",
    "9e999": "'Infinity'::float8",
}


@pytest.fixture
def poisoned(db_path: Path) -> Path:
    """Jobs 1-6 (4 completed, 5 processing, the others pending), their history and worker
    w1, with every kind of unreadable time written into them by hand in SQL."""

    async def seed(queue: JobQueue) -> None:
        for target in "123456":
            await queue.enqueue("t", target)
        for claimed in await queue.claim("w1", limit=6):
            if claimed.id == 4:
                assert await queue.complete(claimed)
            elif claimed.id != 5:
                assert await queue.release(claimed)
        await queue.record_worker(WorkerRecord("w1", "host", 1, NOW, NOW, 10.0, 1, 0))

    with_queue(db_path, seed, clock=ManualClock(NOW))
    for table, key, column, value in _BAD_TIMES:
        if is_postgres(db_path):
            # Times are double precision there: what no number is becomes NaN.
            value = _PG_VALUES.get(value, value)
        query(db_path, f"UPDATE {table} SET {column} = {value} WHERE id = {key}")
    return db_path


async def test_every_library_read_survives_out_of_range_times(poisoned: Path) -> None:
    async with JobQueue(poisoned, clock=ManualClock(NOW)) as queue:
        jobs = {job.id: job for job in await queue.list_jobs()}
        assert sorted(jobs) == [1, 2, 3, 4, 5, 6]
        for job_id, job in jobs.items():
            assert await queue.get_job(job_id) == job
            assert json.dumps(job.to_dict())
            for event in await queue.get_job_history(job_id):
                assert json.dumps(event.to_dict())
        assert jobs[1].run_at == LATEST
        assert jobs[2].created_at == EARLIEST
        assert jobs[3].updated_at == datetime(1970, 1, 1, tzinfo=UTC)
        assert jobs[3].run_at == EARLIEST
        assert jobs[4].started_at == EARLIEST
        assert jobs[5].lease_expires_at == LATEST
        assert jobs[6].run_at == datetime(1970, 1, 1, tzinfo=UTC)
        history = await queue.get_job_history(1)
        assert datetime(1970, 1, 1, tzinfo=UTC) in [event.at for event in history]
        assert LATEST in [event.run_at for event in await queue.get_job_history(2)]
        (worker,) = await queue.list_workers()
        assert (worker.started_at, worker.last_heartbeat) == (EARLIEST, LATEST)
        assert json.dumps(worker.to_dict())
        metrics = await queue.get_metrics(window=1e300)
        assert json.dumps(metrics.to_dict(), allow_nan=False)
        assert metrics.by_type["t"].processing_p50 == MAX_SPAN_SECONDS
        assert metrics.oldest_pending_age_seconds == NOW - MIN_TIMESTAMP
        assert (await queue.get_queue_stats()).total_jobs == 6
        assert await queue.count_jobs_by_type() == {
            "t": {"completed": 1, "pending": 4, "processing": 1}
        }
        assert await queue.cleanup_old_jobs() == 0


async def test_db_check_names_the_rows_out_of_range(poisoned: Path) -> None:
    async with JobQueue(poisoned) as queue:
        problems = await queue.check_integrity()
    poisoned_events = sorted(
        query(poisoned, _FIRST_EVENT_OF.format(job=job).strip("()"))[0][0] for job in (1, 2)
    )
    outside = "a time outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59Z"
    job_columns = "created_at, run_at, started_at, updated_at, lease_expires_at"
    assert problems == [
        f"6 jobs have {outside} ({job_columns}), read back clamped: jobs ids 1, 2, 3, 4, 5, 6",
        f"2 job events have {outside} (at, run_at), read back clamped: job_events ids "
        + ", ".join(str(event_id) for event_id in poisoned_events),
        f"1 worker has {outside} (started_at, last_heartbeat), read back clamped: workers ids w1",
    ]


async def test_db_check_names_ten_rows_and_counts_the_rest(queue: JobQueue) -> None:
    await queue.enqueue_many([{"job_type": "t", "target_id": str(i)} for i in range(12)])
    query(queue.path, "UPDATE jobs SET run_at = 1e300")
    (problem,) = await queue.check_integrity()
    assert problem.startswith("12 jobs have a time outside")
    assert problem.endswith(
        "(run_at), read back clamped: jobs ids 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more"
    )


@pytest.mark.sqlite_only  # the views are SQLite's
def test_sql_views_survive_out_of_range_times(poisoned: Path) -> None:
    conn = sqlite3.connect(poisoned)
    try:
        for view in ("v_active_jobs", "v_worker_status", "v_job_type_stats"):
            assert conn.execute(f"SELECT * FROM {view}").fetchall()
    finally:
        conn.close()


def test_every_cli_read_survives_out_of_range_times(poisoned: Path) -> None:
    listed = cli_json(poisoned, "jobs")
    assert sorted(job["id"] for job in listed) == [1, 2, 3, 4, 5, 6]
    for job in listed:
        assert _invoke(poisoned, "job", str(job["id"]))["job"] == job
    assert "0001-01-01 00:00:00" in ok(cli(poisoned, "job", "2"))
    assert ok(cli(poisoned, "jobs")).count("\n") == 7
    assert cli_json(poisoned, "workers")[0]["last_heartbeat"] == LATEST.isoformat()
    assert "w1" in ok(cli(poisoned, "workers"))
    assert "oldest pending" in ok(cli(poisoned, "stats"))
    result = cli(poisoned, "db", "check")
    assert user_error(result) == "integrity check found 3 problems"
    assert result.stdout.startswith("6 jobs have a time outside 0001-01-01T00:00:00Z..")


async def test_an_int_delay_one_second_past_the_whole_span_is_refused(db_path: Path) -> None:
    # Found by hypothesis: an int delay was capped at the span before the check, so from
    # the first storable second a delay one second too long was accepted.
    async with JobQueue(db_path, clock=ManualClock(MIN_TIMESTAMP)) as queue:
        with pytest.raises(ValidationError, match=r"^delay"):
            await queue.enqueue("t", "x", delay=int(MAX_SPAN_SECONDS) + 1)
        await _assert_nothing_written(queue)
        job_id = await queue.enqueue("t", "x", delay=int(MAX_SPAN_SECONDS))
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.run_at == LATEST


@pytest.mark.postgres_only
async def test_an_out_of_range_enqueued_run_time_reads_back_clamped(queue: JobQueue) -> None:
    """PostgreSQL keeps the "enqueued" event's run time in the job's row: read and checked
    like every other stored time."""
    job_id = await queue.enqueue("t", "x")
    query(queue.path, f"UPDATE jobs SET enqueued_run_at = 1e300 WHERE id = {job_id}")
    (event,) = await queue.get_job_history(job_id)
    assert event.run_at == LATEST
    assert json.dumps(event.to_dict())
    (problem,) = await queue.check_integrity()
    assert problem.startswith("1 job has a time outside")
    assert problem.endswith(f"(enqueued_run_at), read back clamped: jobs ids {job_id}")
