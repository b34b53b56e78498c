"""Metrics: figures checked against a run with known outcomes and durations (manual clock),
the percentile maths, the dashboard views, and the Prometheus example."""

from __future__ import annotations

import json
import math
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from asyncqueue import JobQueue, ManualClock, ValidationError, ValidationTypeError
from asyncqueue.job import ClaimedJob
from asyncqueue.metrics import (
    JobTypeMetrics,
    QueueMetrics,
    build_metrics,
    check_window,
    percentile,
)
from asyncqueue.storage.sqlite import SQLiteStorage
from asyncqueue.storage.sqlite_metrics import (
    MAX_SAMPLES_PER_TYPE,
    OLDEST_DUE_INDEX,
    read_metrics_rows,
)
from asyncqueue.storage.sqlite_views import VIEW_NAMES, VIEWS

ROOT = Path(__file__).resolve().parent.parent
WORKER = "w1"


async def read_metrics(queue: JobQueue, window: float, **options: Any) -> QueueMetrics:
    """What ``get_metrics`` computes, through the storage internals."""
    now = queue.clock.now()
    storage = queue._storage
    if not isinstance(storage, SQLiteStorage):
        from asyncqueue.storage.postgres import PostgresStorage
        from asyncqueue.storage.postgres_metrics import read_metrics_rows as read_pg_rows

        assert isinstance(storage, PostgresStorage)
        pg = storage
        return build_metrics(
            await pg._db.run(
                lambda conn: read_pg_rows(conn, pg._settings.schema, now, window, **options)
            )
        )
    reads = storage._read_side()
    rows = await reads.read(lambda conn: read_metrics_rows(conn, now, window, **options))
    return build_metrics(rows)


async def run_job(
    queue: JobQueue,
    clock: ManualClock,
    job_type: str,
    target: str,
    seconds: float,
    *,
    error: str | None = None,
    max_retries: int = 3,
    priority: int = 1,
) -> ClaimedJob:
    """Enqueue a job, claim it, let ``seconds`` pass, record its outcome."""
    await queue.enqueue(job_type, target, priority=priority, max_retries=max_retries)
    [job] = await queue.claim(WORKER, limit=1)
    assert job.target_id == target
    clock.advance(seconds)
    applied, _ = await queue.finish_and_claim(
        [queue.outcome(job, error)], worker_id=WORKER, limit=0
    )
    assert applied == {job.id}
    return job


async def cancel_new(queue: JobQueue, job_type: str, target: str) -> None:
    job_id = await queue.enqueue(job_type, target, priority=10)
    assert await queue.cancel_job(job_id)


@pytest.fixture
async def known_run(queue: JobQueue, clock: ManualClock) -> float:
    """A history with known outcomes and durations; returns A, the time the main run starts.

    Ends at N = A + 3540. Measured back from N:

    =============  ==========  =========================================================
    finished at    job         outcome
    =============  ==========  =========================================================
    A - 7200       a/old       completed in 2 s (over two hours ago)
    A + 30         a/a1        completed in 30 s (in the hour, not in a 600 s window)
    A + 3020       a/a2        completed in 20 s (in the window, not in the minute)
    A + 3025       b/b1        failed for good in 5 s (max_retries=0)
    A + 3032       b/b2        failed in 7 s, retry scheduled for A + 3033
    A + 3032       c/c1        cancelled
    A + 3501..10   a3 a4 a5 b3 completed in 1, 2, 4 and 3 s (in the last minute)
    A + 3510       c/c2        cancelled
    =============  ==========  =========================================================

    Also: b/p1 pending and due since A + 3400, b/p2 delayed until A + 4510, a/a6 running.
    """
    await run_job(queue, clock, "a", "old", 2)
    clock.advance(7200)
    start = clock.now()
    await run_job(queue, clock, "a", "a1", 30)
    clock.advance(2970)
    await run_job(queue, clock, "a", "a2", 20)
    await run_job(queue, clock, "b", "b1", 5, error="boom", max_retries=0)
    # Priority 10, so the priority-1 jobs run below are claimed before it once it is due.
    await run_job(queue, clock, "b", "b2", 7, error="flaky", max_retries=1, priority=10)
    await cancel_new(queue, "c", "c1")
    clock.advance(368)
    await queue.enqueue("b", "p1", priority=10)
    clock.advance(100)
    for target, seconds in (("a3", 1), ("a4", 2), ("a5", 4)):
        await run_job(queue, clock, "a", target, seconds)
    await run_job(queue, clock, "b", "b3", 3)
    await cancel_new(queue, "c", "c2")
    await queue.enqueue("a", "a6")
    [running] = await queue.claim(WORKER, limit=1)
    assert running.target_id == "a6"
    await queue.enqueue("b", "p2", priority=10, delay=1000)
    clock.advance(30)
    assert clock.now() == start + 3540
    return start


# -- figures from a known run --------------------------------------------------------------


async def test_metrics_match_a_run_with_known_outcomes_and_durations(
    queue: JobQueue, known_run: float
) -> None:
    metrics = await read_metrics(queue, window=600)

    assert metrics.window_seconds == 600
    assert metrics.generated_at == datetime.fromtimestamp(known_run + 3540, UTC)
    assert metrics.completed_last_minute == 4  # a3 a4 a5 b3; c2 was cancelled
    assert metrics.completed_last_hour == 6  # and a1, a2; not a/old
    assert metrics.completed_in_window == 5  # a2 a3 a4 a5 b3
    assert metrics.failed_in_window == 1  # b1
    assert metrics.retried_in_window == 1  # b2
    assert metrics.success_rate == pytest.approx(5 / 6)
    assert metrics.failure_rate == pytest.approx(1 / 6)
    # b2 has been due since A + 3033; p1 only since A + 3400; p2 is not due.
    assert metrics.oldest_pending_age_seconds == 507.0
    assert metrics.depth == {
        "a": {"completed": 6, "processing": 1},
        "b": {"completed": 1, "failed": 1, "pending": 2, "retry_scheduled": 1},
        "c": {"cancelled": 2},
    }
    assert list(metrics.by_type) == ["a", "b", "c"]
    a = metrics.by_type["a"]
    # a2 a3 a4 a5 took 20, 1, 2, 4 s: sorted 1 2 4 20, linear interpolation between ranks.
    assert (a.completed, a.failed, a.samples) == (4, 0, 4)
    assert a.processing_p50 == pytest.approx(3.0)  # rank 1.5: 2 + 0.5 * (4 - 2)
    assert a.processing_p95 == pytest.approx(17.6)  # rank 2.85: 4 + 0.85 * 16
    assert a.processing_p99 == pytest.approx(19.52)  # rank 2.97: 4 + 0.97 * 16
    assert a.processing_mean == pytest.approx(6.75)
    assert metrics.by_type["b"] == JobTypeMetrics("b", 1, 1, 1, 3.0, 3.0, 3.0, 3.0)
    assert metrics.by_type["c"] == JobTypeMetrics("c", 0, 0, 0, None, None, None, None)


async def test_the_window_decides_what_counts(queue: JobQueue, known_run: float) -> None:
    minute = await read_metrics(queue, window=60)
    assert (minute.completed_in_window, minute.failed_in_window) == (4, 0)
    assert minute.completed_in_window == minute.completed_last_minute
    assert minute.retried_in_window == 0
    assert (minute.success_rate, minute.failure_rate) == (1.0, 0.0)
    assert minute.by_type["a"].processing_p50 == 2.0  # 1 2 4
    assert minute.by_type["a"].processing_mean == pytest.approx(7 / 3)

    two_hours = await read_metrics(queue, window=7200)
    a = two_hours.by_type["a"]
    assert (a.completed, a.samples) == (5, 5)  # a1 joins; a/old is still outside
    assert (a.processing_p50, a.processing_p99) == (4.0, pytest.approx(29.6))  # 1 2 4 20 30
    # The minute and hour figures do not depend on the window.
    assert (two_hours.completed_last_minute, two_hours.completed_last_hour) == (4, 6)


async def test_percentiles_use_only_the_newest_samples_per_type(
    queue: JobQueue, known_run: float
) -> None:
    metrics = await read_metrics(queue, window=600, max_samples=2)
    a = metrics.by_type["a"]
    # The newest two completions are a5 (4 s) and a4 (2 s); a3 and a2 are left out.
    assert (a.samples, a.processing_p50, a.processing_p99) == (2, 3.0, pytest.approx(3.98))
    # Counts and the mean still cover every completion in the window.
    assert (a.completed, a.processing_mean) == (4, pytest.approx(6.75))
    assert MAX_SAMPLES_PER_TYPE == 10_000


@pytest.mark.sqlite_only  # an index of the SQLite schema
async def test_the_optional_run_at_index_gives_the_same_figures(
    queue: JobQueue, known_run: float, db_path: Path
) -> None:
    without = await read_metrics(queue, window=600)
    with sqlite3.connect(db_path) as conn:
        conn.execute(OLDEST_DUE_INDEX)
    conn.close()
    with_index = await read_metrics(queue, window=600)
    assert with_index == without
    assert with_index.oldest_pending_age_seconds == 507.0


async def test_an_empty_queue_has_zero_counts_and_no_rates(queue: JobQueue) -> None:
    metrics = await read_metrics(queue, window=3600)
    assert (metrics.completed_last_minute, metrics.completed_last_hour) == (0, 0)
    assert (metrics.completed_in_window, metrics.failed_in_window) == (0, 0)
    assert metrics.retried_in_window == 0
    assert (metrics.success_rate, metrics.failure_rate) == (None, None)
    assert metrics.oldest_pending_age_seconds is None
    assert (metrics.depth, metrics.by_type) == ({}, {})


async def test_delayed_jobs_are_not_pending_age(queue: JobQueue, clock: ManualClock) -> None:
    await queue.enqueue("x", "later", delay=60)
    clock.advance(59)
    assert (await read_metrics(queue, window=60)).oldest_pending_age_seconds is None
    clock.advance(1)
    assert (await read_metrics(queue, window=60)).oldest_pending_age_seconds == 0.0
    clock.advance(15)
    metrics = await read_metrics(queue, window=60)
    assert metrics.oldest_pending_age_seconds == 15.0
    assert metrics.depth == {"x": {"pending": 1}}
    assert metrics.by_type["x"].samples == 0


async def test_to_dict_is_json_ready(queue: JobQueue, known_run: float) -> None:
    metrics = await read_metrics(queue, window=600)
    data = json.loads(json.dumps(metrics.to_dict()))
    assert data["generated_at"] == metrics.generated_at.isoformat()
    assert data["completed_in_window"] == 5
    assert data["depth"]["b"]["retry_scheduled"] == 1
    assert data["by_type"]["a"]["processing_p50"] == pytest.approx(3.0)
    assert data["by_type"]["c"]["processing_mean"] is None


async def test_get_metrics_returns_the_same_figures(queue: JobQueue, known_run: float) -> None:
    public = await queue.get_metrics(window=600)
    assert public == await read_metrics(queue, window=600)


# -- pure parts ----------------------------------------------------------------------------


def test_percentile_interpolates_linearly_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 25) == 1.75
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert [percentile([7.5], q) for q in (0, 50, 99, 100)] == [7.5] * 4


def test_percentile_agrees_with_statistics_inclusive_quantiles() -> None:
    rng = random.Random(5)
    for size in (2, 3, 10, 101, 1000):
        values = sorted(rng.expovariate(1.0) for _ in range(size))
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        for q, expected in enumerate(cuts, start=1):
            assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize("q", [-0.1, 100.1, math.nan])
def test_percentile_refuses_q_outside_0_to_100(q: float) -> None:
    with pytest.raises(ValueError, match="q must be between 0 and 100"):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_check_window_accepts_positive_seconds() -> None:
    assert check_window(60) == 60.0
    assert check_window(0.5) == 0.5


@pytest.mark.parametrize(
    ("window", "error"),
    [
        (0, ValidationError),
        (-1.0, ValidationError),
        (math.inf, ValidationError),
        (math.nan, ValidationError),
        (True, ValidationTypeError),
        ("60", ValidationTypeError),
        (None, ValidationTypeError),
    ],
)
def test_check_window_refuses_bad_windows(window: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="window"):
        check_window(window)


# -- dashboard views -----------------------------------------------------------------------


def test_each_view_statement_creates_the_view_it_names() -> None:
    assert len(VIEWS) == len(VIEW_NAMES) == 3
    for name, statement in zip(VIEW_NAMES, VIEWS, strict=True):
        assert f"CREATE VIEW {name} AS" in statement


def ensure_views(conn: sqlite3.Connection) -> None:
    """The migrated schema ships every view."""
    existing = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    assert existing == set(VIEW_NAMES)


def utc_text(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.sqlite_only  # the SQLite file's views
async def test_views_show_active_jobs_workers_and_type_stats(db_path: Path) -> None:
    # The views read the real clock: jobs are stamped at whole seconds 100 s in the past.
    start = float(int(time.time()) - 100)
    clock = ManualClock(start=start)
    async with JobQueue(db_path, clock=clock) as queue:
        running = await queue.enqueue("v", "running")
        [claimed] = await queue.claim("alive", limit=1)
        assert claimed.id == running
        delayed = await queue.enqueue("v", "delayed", delay=3600)
        due = await queue.enqueue("v", "due")
        await queue.enqueue("w", "done")
        [done] = await queue.claim("alive", limit=1, job_types=("w",))
        clock.advance(5)
        assert await queue.complete(done)

    now = time.time()
    with sqlite3.connect(db_path) as conn:
        conn.row_factory = sqlite3.Row
        ensure_views(conn)
        conn.executemany(
            "INSERT INTO workers VALUES (?, 'host', ?, ?, ?, 10.0, ?, ?)",
            [("alive", 1, now - 50, now - 1, 4, 1), ("dead", 2, now - 500, now - 100, 0, 0)],
        )
        active = {r["id"]: r for r in conn.execute("SELECT * FROM v_active_jobs")}
        workers = {r["worker_id"]: r for r in conn.execute("SELECT * FROM v_worker_status")}
        stats = [tuple(r) for r in conn.execute("SELECT * FROM v_job_type_stats")]
    conn.close()

    assert sorted(active) == [running, delayed, due]
    assert active[running]["status"] == "processing"
    assert active[running]["worker_id"] == "alive"
    assert active[running]["started_at_utc"] == utc_text(start)
    assert 100 <= active[running]["running_seconds"] < 160
    assert active[running]["due"] is None
    assert active[delayed]["run_at_utc"] == utc_text(start + 3600)
    assert (active[delayed]["due"], active[delayed]["waiting_seconds"]) == (0, None)
    assert active[due]["created_at_utc"] == utc_text(start)
    assert active[due]["due"] == 1
    assert 100 <= active[due]["waiting_seconds"] < 160

    assert workers["alive"]["alive"] == 1
    assert workers["alive"]["processing_jobs"] == 1
    assert workers["alive"]["last_heartbeat_utc"] == utc_text(now - 1)
    assert (workers["alive"]["jobs_processed"], workers["alive"]["jobs_failed"]) == (4, 1)
    assert workers["dead"]["alive"] == 0
    assert workers["dead"]["processing_jobs"] == 0
    # SQLite reads the clock to the millisecond: allow for the rounding.
    assert 99.9 <= workers["dead"]["seconds_since_heartbeat"] < 160

    assert stats == [
        ("v", "pending", 2, None, None, None),
        ("v", "processing", 1, None, None, None),
        ("w", "completed", 1, 5.0, 5.0, utc_text(start + 5)),
    ]


# -- examples/prometheus_exporter.py -------------------------------------------------------


def test_prometheus_exporter_once_prints_the_demo_metrics(tmp_path: Path) -> None:
    from prometheus_client import parser

    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "prometheus_exporter.py"), "--once"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser.text_string_to_metric_families(result.stdout)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    # 40 jobs, alternating types; n % 7 == 6 never succeeds (3 resize, 2 email), the
    # rest complete, some on their retry.
    for job_type, completed, failed in (("resize_image", 17, 3), ("send_email", 18, 2)):
        assert value("asyncqueue_job_events_total", event="enqueued", job_type=job_type) == 20
        assert value("asyncqueue_job_events_total", event="completed", job_type=job_type) == (
            completed
        )
        assert value("asyncqueue_job_events_total", event="failed", job_type=job_type) == failed
        assert value("asyncqueue_jobs", job_type=job_type, status="completed") == completed
        assert value("asyncqueue_jobs", job_type=job_type, status="failed") == failed
        assert value(
            "asyncqueue_job_duration_seconds_count", job_type=job_type, outcome="completed"
        ) == (completed)
        assert value("asyncqueue_processing_seconds", job_type=job_type, percentile="99") >= 0
    assert value("asyncqueue_completed_last_minute") == 35
    assert value("asyncqueue_failure_rate") == pytest.approx(5 / 40)
    assert value("asyncqueue_oldest_pending_age_seconds") == 0
