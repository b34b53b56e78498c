"""The SQL behind ``JobQueue.get_metrics`` on SQLite, and the function that runs it.

Every figure comes from the ``jobs`` table (never from the history table, which may be
switched off), through indexes, in one read transaction. What each statement costs on a
large table is written next to it; figures are from a table of a million jobs (300,000 of
them completed in the last hour, 260,000 waiting), warm cache:

- minute and hour totals: index only, about 40 ms for an hour of 300,000 completions;
- per-type counts, means and percentiles for the window: a table lookup per completion in
  the window, about 5 microseconds each (1.5 s for a 3600 s window holding 300,000, 0.03 s
  for a 60 s window holding 5,000). Callers choose the window; keep it short on busy queues;
- depth by type and status: one pass over the smallest index, no lookups, about 70 ms
  (``queue_stats`` does the same);
- oldest due job: about 0.2 s per 250,000 waiting jobs, or one probe with the optional
  ``OLDEST_DUE_INDEX``;
- failed and retry-scheduled jobs: one lookup per job in those statuses (the dead letter,
  the retry backlog), about 30 ms per 20,000.

SQLite releases the GIL while it steps, and the Python work here is bounded by the sample
cap, so a metrics read does not stall the event loop.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from asyncqueue.metrics import MetricsRows
from asyncqueue.storage.sqlite_connection import first, rows
from asyncqueue.storage.sqlite_sql import FINISHED_REMOVABLE, READY

#: Most processing times read per job type for the percentiles: the newest in the window.
MAX_SAMPLES_PER_TYPE = 10_000

# Completed and cancelled jobs by finish time, from the jobs_finished index (its WHERE term
# spelled as in the index, so SQLite may use it).
_FINISHED = f"FROM jobs INDEXED BY jobs_finished WHERE status IN {FINISHED_REMOVABLE}"

# Counting a range of jobs_finished reads the index alone, however many jobs finished in the
# hour; telling completed from cancelled jobs would cost a table lookup per row. So the
# totals count both, and the cancelled ones (few, and read through jobs_status_type) are
# subtracted.
FINISHED_TOTALS = f"""
SELECT coalesce(sum(completed_at >= :minute_since), 0),
       coalesce(sum(completed_at >= :hour_since), 0)
{_FINISHED} AND completed_at >= :hour_since
"""

CANCELLED_TOTALS = """
SELECT coalesce(sum(completed_at >= :minute_since), 0),
       coalesce(sum(completed_at >= :hour_since), 0)
FROM jobs INDEXED BY jobs_status_type
WHERE status = 'cancelled' AND completed_at >= :hour_since
"""

# One table lookup per job finished in the window.
COMPLETED_IN_WINDOW_BY_TYPE = f"""
SELECT job_type, count(*), avg(completed_at - started_at)
{_FINISHED} AND completed_at >= :window_since AND status = 'completed'
GROUP BY job_type
"""

# The newest MAX_SAMPLES_PER_TYPE processing times of each type in the window.
RECENT_DURATIONS = f"""
SELECT job_type, duration FROM (
    SELECT job_type, completed_at - started_at AS duration,
           row_number() OVER (PARTITION BY job_type ORDER BY completed_at DESC) AS recency
    {_FINISHED} AND completed_at >= :window_since AND status = 'completed'
        AND started_at IS NOT NULL
)
WHERE recency <= :max_samples
"""

# Reads every failed job (the dead letter, kept until retried or removed by hand).
FAILED_IN_WINDOW_BY_TYPE = """
SELECT job_type, count(*)
FROM jobs INDEXED BY jobs_status_type
WHERE status = 'failed' AND completed_at >= :window_since
GROUP BY job_type
"""

# A retry-scheduled job was last written when its failed attempt was recorded (nothing
# else updates it until it is claimed again or cancelled), so updated_at is that time.
# Reads every job waiting for a retry.
RETRIED_IN_WINDOW = """
SELECT count(*)
FROM jobs INDEXED BY jobs_status_type
WHERE status = 'retry_scheduled' AND updated_at >= :window_since
"""

#: Optional index that makes the oldest-due query one probe instead of a pass over every
#: ready job. It costs each enqueue and each claim one more index write (7-9% of enqueue
#: and claim-and-complete throughput in a micro-benchmark), so the schema leaves it out;
#: ``read_metrics_rows`` uses it when a database has it.
OLDEST_DUE_INDEX_NAME = "jobs_ready_by_run_at"
OLDEST_DUE_INDEX = f"CREATE INDEX {OLDEST_DUE_INDEX_NAME} ON jobs (run_at) WHERE status IN {READY}"

# Without the index: a table lookup per ready job (about 0.2 s per 250,000 waiting).
OLDEST_DUE_RUN_AT = f"""
SELECT min(run_at) FROM jobs INDEXED BY jobs_status_type
WHERE status IN {READY} AND run_at <= :now
"""

# With it (SQLite would not choose it unprompted without ANALYZE statistics): one probe.
OLDEST_DUE_RUN_AT_INDEXED = f"""
SELECT min(run_at) FROM jobs INDEXED BY {OLDEST_DUE_INDEX_NAME}
WHERE status IN {READY} AND run_at <= :now
"""

HAS_INDEX = "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?"

# A pass over jobs_status_type alone (no table lookups), in the index's order (no sort).
DEPTH = """
SELECT job_type, status, count(*)
FROM jobs INDEXED BY jobs_status_type
GROUP BY status, job_type
"""


def read_metrics_rows(
    conn: sqlite3.Connection,
    now: float,
    window: float,
    *,
    max_samples: int = MAX_SAMPLES_PER_TYPE,
) -> MetricsRows:
    """Read every figure ``build_metrics`` needs in one read transaction, so they agree.

    Runs in a read connection's thread (``ReadPool.read``).

    Args:
        conn: a connection with no transaction open.
        now: the time the figures are for (UTC epoch seconds, from the queue's clock).
        window: the window's length in seconds (> 0).
        max_samples: most processing times read per job type.

    Returns:
        The raw figures.
    """
    params: dict[str, Any] = {
        "now": now,
        "minute_since": now - 60.0,
        "hour_since": now - 3600.0,
        "window_since": now - window,
        "max_samples": max_samples,
    }
    conn.execute("BEGIN")
    try:
        finished_minute, finished_hour = first(conn, FINISHED_TOTALS, params)
        cancelled_minute, cancelled_hour = first(conn, CANCELLED_TOTALS, params)
        completed = rows(conn, COMPLETED_IN_WINDOW_BY_TYPE, params)
        durations: dict[str, list[float]] = {}
        for job_type, duration in rows(conn, RECENT_DURATIONS, params):
            durations.setdefault(job_type, []).append(duration)
        failed = rows(conn, FAILED_IN_WINDOW_BY_TYPE, params)
        retried = first(conn, RETRIED_IN_WINDOW, params)[0]
        oldest = first(conn, _oldest_due_statement(conn), params)[0]
        depth = [(job_type, status, count) for job_type, status, count in rows(conn, DEPTH)]
    finally:
        conn.execute("COMMIT")
    return MetricsRows(
        now=now,
        window=window,
        completed_last_minute=finished_minute - cancelled_minute,
        completed_last_hour=finished_hour - cancelled_hour,
        completed_by_type={job_type: count for job_type, count, _ in completed},
        failed_by_type=dict(failed),
        mean_processing_by_type={
            job_type: mean for job_type, _, mean in completed if mean is not None
        },
        durations_by_type=durations,
        retried_in_window=retried,
        oldest_due_run_at=oldest,
        depth=depth,
    )


def _oldest_due_statement(conn: sqlite3.Connection) -> str:
    indexed = first(conn, HAS_INDEX, (OLDEST_DUE_INDEX_NAME,))[0]
    return OLDEST_DUE_RUN_AT_INDEXED if indexed else OLDEST_DUE_RUN_AT
