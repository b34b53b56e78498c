"""Read-only SQL views for dashboards and ad-hoc queries (``sqlite3 queue.db``), by name.

They ship with the schema, so any SQLite client (Grafana's SQLite data source, Datasette,
the ``sqlite3`` shell) can read the queue without asyncqueue. Times are UTC text
(``YYYY-MM-DD HH:MM:SS``, whole seconds) in ``*_utc`` columns; durations are seconds.
"Now" is the database's wall clock (``julianday('now')``), not a queue's injected clock.
"""

from __future__ import annotations

from asyncqueue.job import JobStatus
from asyncqueue.storage.base import WORKER_LIVENESS_MULTIPLE

# Spelled here rather than imported: sqlite_sql includes these views in its migrations.
ACTIVE = (
    "('"
    + "', '".join(
        s.value for s in (JobStatus.PENDING, JobStatus.RETRY_SCHEDULED, JobStatus.PROCESSING)
    )
    + "')"
)

# UTC epoch seconds now, as the jobs table stores times ('now' is fixed within a statement).
_NOW = "((julianday('now') - 2440587.5) * 86400.0)"

#: Jobs waiting, scheduled for a retry or running, oldest first, with readable UTC times.
#: ``due`` is 1 for a waiting job whose ``run_at`` has come; ``waiting_seconds`` is how long
#: it has been due, ``running_seconds`` how long a running job has held its claim.
V_ACTIVE_JOBS = f"""
CREATE VIEW v_active_jobs AS
SELECT
    id, job_type, target_id, status, priority, retry_count, max_retries, attempts,
    worker_id, error_message,
    datetime(created_at, 'unixepoch') AS created_at_utc,
    datetime(run_at, 'unixepoch') AS run_at_utc,
    datetime(started_at, 'unixepoch') AS started_at_utc,
    datetime(lease_expires_at, 'unixepoch') AS lease_expires_at_utc,
    CASE WHEN status != 'processing' THEN run_at <= {_NOW} END AS due,
    CASE WHEN status != 'processing' AND run_at <= {_NOW}
        THEN {_NOW} - run_at END AS waiting_seconds,
    CASE WHEN status = 'processing' THEN {_NOW} - started_at END AS running_seconds
FROM jobs
WHERE status IN {ACTIVE}
ORDER BY id
"""

#: Registered workers with ``alive`` (heartbeat younger than three intervals, the rule
#: ``get_queue_stats`` counts by) and the number of jobs each is running now.
V_WORKER_STATUS = f"""
CREATE VIEW v_worker_status AS
SELECT
    id AS worker_id, host, pid,
    datetime(started_at, 'unixepoch') AS started_at_utc,
    datetime(last_heartbeat, 'unixepoch') AS last_heartbeat_utc,
    heartbeat_interval,
    {_NOW} - last_heartbeat AS seconds_since_heartbeat,
    (last_heartbeat + {WORKER_LIVENESS_MULTIPLE} * heartbeat_interval >= {_NOW}) AS alive,
    jobs_processed, jobs_failed,
    (SELECT count(*) FROM jobs
     WHERE jobs.status = 'processing' AND jobs.worker_id = workers.id) AS processing_jobs
FROM workers
ORDER BY id
"""

#: Job counts per job type and status; for completed jobs also the mean and longest
#: processing time (claim of the last attempt to completion) and the latest completion.
#: Reads the whole table: meant for dashboards refreshed every few seconds at most.
V_JOB_TYPE_STATS = """
CREATE VIEW v_job_type_stats AS
SELECT
    job_type, status, count(*) AS jobs,
    CASE WHEN status = 'completed' THEN avg(completed_at - started_at) END
        AS avg_processing_seconds,
    CASE WHEN status = 'completed' THEN max(completed_at - started_at) END
        AS max_processing_seconds,
    datetime(max(completed_at), 'unixepoch') AS last_finished_utc
FROM jobs
GROUP BY job_type, status
ORDER BY job_type, status
"""

#: Every view, in creation order; migrations 2 and 3 run these.
VIEWS: tuple[str, ...] = (V_ACTIVE_JOBS, V_WORKER_STATUS, V_JOB_TYPE_STATS)

#: The views' names, in the order of ``VIEWS``.
VIEW_NAMES: tuple[str, ...] = ("v_active_jobs", "v_worker_status", "v_job_type_stats")
