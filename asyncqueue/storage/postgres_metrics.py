"""The SQL behind ``JobQueue.get_metrics`` on PostgreSQL, and the function that runs it.

The same figures as ``sqlite_metrics``, from the ``jobs`` table (never the history), read in
one REPEATABLE READ read-only transaction so they agree.
"""

from __future__ import annotations

from typing import Any

from asyncqueue.metrics import MetricsRows
from asyncqueue.storage.postgres_sql import FINISHED_REMOVABLE, READY, in_schema, positional

#: Most processing times read per job type for the percentiles: the newest in the window.
MAX_SAMPLES_PER_TYPE = 10_000

_FINISHED = f"FROM __schema__.jobs WHERE status IN {FINISHED_REMOVABLE}"

COMPLETED_TOTALS = """
SELECT count(*) FILTER (WHERE completed_at >= :minute_since),
       count(*)
FROM __schema__.jobs WHERE status = 'completed' AND completed_at >= :hour_since
"""

COMPLETED_IN_WINDOW_BY_TYPE = f"""
SELECT job_type, count(*), avg(completed_at - started_at)
{_FINISHED} AND completed_at >= :window_since AND status = 'completed'
GROUP BY job_type
"""

RECENT_DURATIONS = f"""
SELECT job_type, duration FROM (
    SELECT job_type, completed_at - started_at AS duration,
           row_number() OVER (PARTITION BY job_type ORDER BY completed_at DESC) AS recency
    {_FINISHED} AND completed_at >= :window_since AND status = 'completed'
        AND started_at IS NOT NULL
) AS recent
WHERE recency <= :max_samples
"""

FAILED_IN_WINDOW_BY_TYPE = """
SELECT job_type, count(*) FROM __schema__.jobs
WHERE status = 'failed' AND completed_at >= :window_since
GROUP BY job_type
"""

RETRIED_IN_WINDOW = """
SELECT count(*) FROM __schema__.jobs
WHERE status = 'retry_scheduled' AND updated_at >= :window_since
"""

OLDEST_DUE_RUN_AT = f"""
SELECT min(run_at) FROM __schema__.jobs WHERE status IN {READY} AND run_at <= :now
"""

DEPTH = """
SELECT job_type, status, count(*) FROM __schema__.jobs GROUP BY status, job_type
"""


async def read_metrics_rows(
    conn: Any,
    schema: str,
    now: float,
    window: float,
    *,
    max_samples: int = MAX_SAMPLES_PER_TYPE,
) -> MetricsRows:
    """Read every figure ``build_metrics`` needs in one snapshot.

    Args:
        conn: an asyncpg connection with no transaction open.
        schema: the queue's schema.
        now: the time the figures are for (UTC epoch seconds, from the queue's clock).
        window: the window's length in seconds (> 0).
        max_samples: most processing times read per job type.
    """
    params: dict[str, Any] = {
        "now": now,
        "minute_since": now - 60.0,
        "hour_since": now - 3600.0,
        "window_since": now - window,
        "max_samples": max_samples,
    }

    async def fetch(statement: str) -> list[Any]:
        text, names = positional(in_schema(statement, schema))
        return list(await conn.fetch(text, *(params[name] for name in names)))

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        minute, hour = (await fetch(COMPLETED_TOTALS))[0]
        completed = await fetch(COMPLETED_IN_WINDOW_BY_TYPE)
        durations: dict[str, list[float]] = {}
        for job_type, duration in await fetch(RECENT_DURATIONS):
            durations.setdefault(job_type, []).append(duration)
        failed = await fetch(FAILED_IN_WINDOW_BY_TYPE)
        retried = (await fetch(RETRIED_IN_WINDOW))[0][0]
        oldest = (await fetch(OLDEST_DUE_RUN_AT))[0][0]
        depth = [(job_type, status, count) for job_type, status, count in await fetch(DEPTH)]
    return MetricsRows(
        now=now,
        window=window,
        completed_last_minute=minute,
        completed_last_hour=hour,
        completed_by_type={job_type: count for job_type, count, _ in completed},
        failed_by_type={row[0]: row[1] for row in failed},
        mean_processing_by_type={
            job_type: mean for job_type, _, mean in completed if mean is not None
        },
        durations_by_type=durations,
        retried_in_window=retried,
        oldest_due_run_at=oldest,
        depth=depth,
    )
