"""The SQLite schema, its migrations and every statement the SQLite backend runs, by name.

Times are REAL UTC epoch seconds. Status sets are spelled from ``asyncqueue.job`` so SQL and
Python cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable

from asyncqueue.job import JobStatus
from asyncqueue.storage.base import WORKER_LIVENESS_MULTIPLE, Strategy
from asyncqueue.storage.claim_order import earliest_ready, merged_ranges, per_priority_ranges
from asyncqueue.storage.sqlite_views import VIEW_NAMES, VIEWS


def _sql_set(*statuses: JobStatus) -> str:
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


# Spelled identically in the partial indexes and in the queries, because SQLite only uses a
# partial index when the query's WHERE term matches the index's.
READY = _sql_set(JobStatus.PENDING, JobStatus.RETRY_SCHEDULED)
FINISHED_REMOVABLE = _sql_set(JobStatus.COMPLETED, JobStatus.CANCELLED)

#: Identifies an asyncqueue database file (PRAGMA application_id), "AQ01".
APPLICATION_ID = 0x41513031

#: The schema version this library writes; PRAGMA user_version holds the file's.
SCHEMA_VERSION = 5

JOBS_INDEXES = (
    # Duplicate prevention lives in the database, so concurrent enqueuers cannot race.
    "CREATE UNIQUE INDEX jobs_active_pair ON jobs (job_type, target_id) WHERE active = 1",
    # The claim index holds only ready rows, so claim cost stays flat however many
    # finished rows are kept. Schema version 5 orders it by (priority, run_at, id).
    f"CREATE INDEX jobs_ready_by_priority ON jobs (priority, id) WHERE status IN {READY}",
    f"CREATE INDEX jobs_finished ON jobs (completed_at) WHERE status IN {FINISHED_REMOVABLE}",
    # Counts by status, listings, and the lease sweep: status = 'processing' selects only
    # the jobs running now, however large the backlog.
    "CREATE INDEX jobs_status_type ON jobs (status, job_type)",
)


def _status_in(*statuses: JobStatus) -> str:
    """``status IN ('a', 'b' ...)``: how schema versions 1 and 2 spelled the CHECKs."""
    return f"status IN {_sql_set(*statuses)}"


def _status_is(*statuses: JobStatus) -> str:
    """``status = 'a' OR status = 'b' ...``: the CHECK constraints' spelling of IN.

    SQLite evaluates ``status IN (<constants>)`` in a CHECK through a small lookup table
    that it builds for each row it writes: the two CHECKs that read status took a third of
    the cost of inserting a job (raw SQL, 1,000-job batches: 167k rows/s with IN, 226k
    with OR), and every claim and completion paid it again.
    """
    return " OR ".join(f"status = '{s.value}'" for s in statuses)


_ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RETRY_SCHEDULED, JobStatus.PROCESSING)


def jobs_table_sql(name: str, status_check: Callable[..., str] = _status_is) -> str:
    """The jobs table under ``name``; ``status_check`` spells its CHECKs on status."""
    return f"""
        CREATE TABLE {name} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_type TEXT NOT NULL CHECK (length(job_type) BETWEEN 1 AND 255),
            target_id TEXT NOT NULL CHECK (length(target_id) BETWEEN 1 AND 255),
            status TEXT NOT NULL DEFAULT 'pending' CHECK ({status_check(*JobStatus)}),
            priority INTEGER NOT NULL DEFAULT 5
                CHECK (typeof(priority) = 'integer' AND priority BETWEEN 1 AND 10),
            retry_count INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
            max_retries INTEGER NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
            attempts INTEGER NOT NULL DEFAULT 0,
            metadata TEXT NOT NULL DEFAULT '{{}}' CHECK (json_valid(metadata)),
            error_message TEXT,
            worker_id TEXT,
            lease_token TEXT,
            lease_expires_at REAL,
            created_at REAL NOT NULL,
            run_at REAL NOT NULL,
            started_at REAL,
            completed_at REAL,
            updated_at REAL NOT NULL,
            -- 1 while the job holds its (job_type, target_id) pair, NULL once it is over.
            -- A column of its own so that a claim, which keeps the job active, leaves the
            -- duplicate index untouched.
            active INTEGER DEFAULT 1
                CHECK (coalesce(active, 0) = ({status_check(*_ACTIVE_STATUSES)}))
        )
        """


_ALL_JOB_COLUMNS = (
    "id, job_type, target_id, status, priority, retry_count, max_retries, attempts, metadata, "
    "error_message, worker_id, lease_token, lease_expires_at, created_at, run_at, started_at, "
    "completed_at, updated_at, active"
)

# Migration N takes a database from user_version N-1 to N.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        jobs_table_sql("jobs", status_check=_status_in),
        *JOBS_INDEXES,
        """
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at REAL NOT NULL,
            last_heartbeat REAL NOT NULL,
            heartbeat_interval REAL NOT NULL,
            jobs_processed INTEGER NOT NULL DEFAULT 0,
            jobs_failed INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID
        """,
    ),
    2: (
        # Job history: one row per transition, written in the transaction that makes it.
        # No foreign key: cleanup deletes a job's events with the job, and a foreign key
        # would cost a lookup on every event written.
        """
        CREATE TABLE job_events (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL,
            event TEXT NOT NULL,
            status TEXT NOT NULL,
            at REAL NOT NULL,
            worker_id TEXT,
            job_type TEXT,
            error TEXT,
            run_at REAL
        )
        """,
        # History is read per job (and deleted with its job); nothing reads it by time, so
        # no index on `at`: each event costs one index entry fewer on the hot path.
        "CREATE INDEX job_events_by_job ON job_events (job_id, id)",
        # Views for dashboards and the sqlite3 shell.
        *VIEWS,
    ),
    # The jobs table rebuilt with CHECKs that spell IN as OR (see _status_is), by SQLite's
    # procedure for schema changes ALTER TABLE cannot make: the views that read the table
    # go first and come back last, and the AUTOINCREMENT sequence is carried over, so an
    # id given to a job since deleted is still never given again.
    3: (
        *(f"DROP VIEW {name}" for name in VIEW_NAMES),
        jobs_table_sql("jobs_v3"),
        f"INSERT INTO jobs_v3 ({_ALL_JOB_COLUMNS}) SELECT {_ALL_JOB_COLUMNS} FROM jobs",
        "DELETE FROM sqlite_sequence WHERE name = 'jobs_v3'",
        """
        INSERT INTO sqlite_sequence (name, seq)
        SELECT 'jobs_v3', seq FROM sqlite_sequence WHERE name = 'jobs'
        """,
        "DROP TABLE jobs",
        "ALTER TABLE jobs_v3 RENAME TO jobs",
        *JOBS_INDEXES,
        *VIEWS,
    ),
    # What a job produced (process_job's JobResult, a remote worker's "result"), as JSON.
    4: ("ALTER TABLE jobs ADD COLUMN result TEXT CHECK (result IS NULL OR json_valid(result))",),
    # Claims read each priority's due jobs by run time and stop at the first not yet due,
    # instead of stepping over every delayed job of the priority (see _claim_candidates).
    5: (
        "DROP INDEX jobs_ready_by_priority",
        f"CREATE INDEX jobs_ready_by_priority ON jobs (priority, run_at, id) WHERE status IN {READY}",
    ),
}

# History rows of the frequent transitions are written by SQLite itself, inside the
# statement that makes them: no per-event Python on the writer thread (enqueues are the
# exception: see RECORD_ENQUEUED_AFTER). TEMP triggers live on the writer connection of a
# queue that records history, so another process with history off writes none. Each condition names the only
# statement that makes its transition; the rare ones (failed, released, recovered,
# cancelled, retried) are written by the storage code, which knows which verb ran.
HISTORY_TRIGGERS = (
    """
    CREATE TEMP TRIGGER IF NOT EXISTS aq_history_claimed AFTER UPDATE OF status ON main.jobs
    WHEN NEW.status = 'processing'
    BEGIN
        INSERT INTO job_events (job_id, event, status, at, worker_id, job_type)
        VALUES (NEW.id, 'claimed', 'processing', NEW.updated_at, NEW.worker_id, NEW.job_type);
    END
    """,
    """
    CREATE TEMP TRIGGER IF NOT EXISTS aq_history_attempt_done AFTER UPDATE OF status ON main.jobs
    WHEN OLD.status = 'processing' AND NEW.status IN ('completed', 'retry_scheduled')
    BEGIN
        INSERT INTO job_events (job_id, event, status, at, worker_id, job_type, error, run_at)
        VALUES (NEW.id, NEW.status, NEW.status, NEW.updated_at, NEW.worker_id, NEW.job_type,
                NEW.error_message,
                CASE WHEN NEW.status = 'retry_scheduled' THEN NEW.run_at END);
    END
    """,
)

_JOB_COLUMNS = (
    "id, job_type, target_id, status, priority, retry_count, max_retries, attempts, metadata, "
    "error_message, worker_id, created_at, run_at, started_at, completed_at, updated_at, "
    "lease_expires_at, result, lease_token"
)

# An enqueue's history rows, written by one statement after the INSERTs of a write rather
# than by a row trigger: a trigger runs a sub-program per row, and an enqueue_many of 1,000
# jobs went from 161k to 186k rows/s of raw SQL without it. Inside the writer's transaction
# every row above the sequence's value before the INSERTs is one of them.
RECORD_ENQUEUED_AFTER = """
INSERT INTO job_events (job_id, event, status, at, job_type, run_at)
SELECT id, 'enqueued', status, created_at, job_type, run_at FROM jobs WHERE id > ?
"""

# No RETURNING: it cost about a fifth of a multi-row insert (6.2 against 4.9 us a row).
# The writer holds the write lock, so the new ids follow from the table's AUTOINCREMENT
# sequence (see LAST_JOB_ID) and the count of rows inserted.
INSERT_JOB = """
INSERT INTO jobs (job_type, target_id, status, priority, max_retries, metadata,
                  created_at, run_at, updated_at)
VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

#: The highest job id ever assigned (AUTOINCREMENT never reuses one); none before the first.
LAST_JOB_ID = "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"

# Several jobs per statement, parameters bound row by row (cheaper than parsing JSON); a
# conflict (an active duplicate, also one earlier in the same statement or transaction)
# inserts nothing for that row. Rows are inserted, and given ids, in VALUES order.
_INSERT_ROW = "(?, ?, 'pending', ?, ?, ?, ?, ?, ?)"
#: Rows per multi-row INSERT; a batch is cut into these sizes, largest first.
INSERT_ROWS_PER_STATEMENT = (256, 64, 16, 4, 1)


def insert_rows_sql(rows: int) -> str:
    """INSERT of ``rows`` jobs, 8 parameters each."""
    return f"""
INSERT INTO jobs (job_type, target_id, status, priority, max_retries, metadata,
                  created_at, run_at, updated_at)
VALUES {", ".join([_INSERT_ROW] * rows)}
ON CONFLICT DO NOTHING
"""


INSERT_ROWS: dict[int, str] = {n: insert_rows_sql(n) for n in INSERT_ROWS_PER_STATEMENT}

SELECT_ACTIVE_ID = """
SELECT id FROM jobs WHERE job_type = ? AND target_id = ? AND active = 1
"""

# INDEXED BY pins every claim to the ready index: without statistics SQLite would rather use
# jobs_status_type and sort, and if a schema change ever made the index unusable the
# statement fails loudly instead of quietly turning into a scan.
_READY_ROWS = f"FROM jobs INDEXED BY jobs_ready_by_priority WHERE status IN {READY}"
_TYPE_FILTER = "AND job_type IN (SELECT value FROM json_each(:job_types))"


def _claim_candidates(strategy: Strategy, type_filter: str) -> str:
    """The ids to claim, in the strategy's order, each priority one range of the ready
    index ``(priority, run_at, id)`` that ends at the first job not yet due.

    Jobs delayed into the future are never read: with 100,000 delayed jobs ahead of due
    ones, a worker drained 11,000 jobs/s reading the index in (priority, id) order and
    skipping them, against 46,000 without them.
    """
    due = f"{_READY_ROWS} AND run_at <= :now {type_filter}"
    if strategy == "priority":
        # The ranges one after another, highest priority first; the LIMIT ends the
        # compound once it has enough, so lower priorities are not read.
        return " UNION ALL ".join(per_priority_ranges(due, "run_at, id")) + " LIMIT :limit"
    return merged_ranges(due, strategy)


# A claim is three statements in the writer's transaction, none answering more than one
# row: the ids to take, the UPDATE that takes them, and the taken jobs as one JSON array.
# The writer's thread takes the GIL back for every row a statement returns, and the event
# loop builds a tuple for each; against UPDATE ... RETURNING (a row a job), a worker's
# exchanges took 9 % less of the writer thread's time and one worker drained 9 % faster.
# Under the write lock the chosen ids cannot change between the three.
def _claim_ids(strategy: Strategy, typed: bool) -> str:
    type_filter = _TYPE_FILTER if typed else ""
    return f"SELECT json_group_array(id) FROM ({_claim_candidates(strategy, type_filter)})"


#: (strategy, filtered by job type) -> the ids to claim, as a JSON array
CLAIM_IDS: dict[tuple[Strategy, bool], str] = {
    (strategy, typed): _claim_ids(strategy, typed)
    for strategy in ("priority", "fifo", "lifo")
    for typed in (False, True)
}

#: (filtered by job type) -> the earliest run_at of a ready job, or NULL: what an idle
#: worker reads instead of claiming (see ``JobQueue.wait_for_work``).
EARLIEST_READY: dict[bool, str] = {
    typed: earliest_ready(f"{_READY_ROWS} {_TYPE_FILTER if typed else ''}")
    for typed in (False, True)
}


CLAIM_JOBS = """
UPDATE jobs
SET status = 'processing', worker_id = :worker_id,
    lease_token = lower(hex(randomblob(8))), lease_expires_at = :lease_expires_at,
    started_at = :now, updated_at = :now, attempts = attempts + 1
WHERE id IN (SELECT value FROM json_each(:ids))
"""

#: The claimed jobs, each an array in ClaimedJob's field order, metadata as JSON.
CLAIMED_JOBS = """
SELECT json_group_array(json_array(id, job_type, target_id, json(metadata), priority,
                                   retry_count, max_retries, lease_token, worker_id))
FROM jobs WHERE id IN (SELECT value FROM json_each(:ids))
"""


_LEASE_CLEARED = "lease_token = NULL, lease_expires_at = NULL"

# Outcomes other than plain completions (those go in FINISH_COMPLETED), a few per statement,
# each fenced by its lease token: 8 parameters a row (id, token, status, run_at, error,
# retried, now, result). NOT INDEXED keeps the plan a rowid lookup per outcome rather than a
# walk over every processing row. A released job (status pending) keeps its previous error
# and loses its worker and token; the others record theirs and keep the token of the attempt
# that finished, so a worker repeating its report (an answer lost in transit) is recognised.
_FINISH_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
#: Outcomes per statement; a batch is cut into these sizes, largest first.
FINISH_ROWS_PER_STATEMENT = (64, 16, 4, 1)


def finish_rows_sql(rows: int, returning: bool = False) -> str:
    """UPDATE applying ``rows`` outcomes; ``returning`` the ids whose lease was still held."""
    return f"""
UPDATE jobs NOT INDEXED SET
    status = done.column3,
    retry_count = retry_count + done.column6,
    run_at = coalesce(done.column4, jobs.run_at),
    error_message = CASE WHEN done.column3 = 'pending' THEN error_message ELSE done.column5 END,
    completed_at = CASE WHEN done.column3 IN ('completed', 'failed') THEN done.column7 END,
    active = CASE WHEN done.column3 IN ('completed', 'failed') THEN NULL ELSE 1 END,
    worker_id = CASE WHEN done.column3 = 'pending' THEN NULL ELSE worker_id END,
    result = CASE WHEN done.column3 = 'completed' THEN done.column8 ELSE result END,
    lease_token = CASE WHEN done.column3 = 'pending' THEN NULL ELSE lease_token END,
    updated_at = done.column7, lease_expires_at = NULL
FROM (VALUES {", ".join([_FINISH_ROW] * rows)}) AS done
WHERE jobs.id = done.column1 AND jobs.lease_token = done.column2
    AND jobs.status = 'processing'
{"RETURNING jobs.id" if returning else ""}
"""


# Without RETURNING (one row a job, see CLAIM_IDS) the count of rows changed tells whether
# every lease was still held, as it nearly always is; when one was lost, the exchange is
# undone and run again with RETURNING, which names the outcomes that applied.
FINISH_ROWS: dict[int, str] = {n: finish_rows_sql(n) for n in FINISH_ROWS_PER_STATEMENT}
FINISH_ROWS_RETURNING: dict[int, str] = {
    n: finish_rows_sql(n, returning=True) for n in FINISH_ROWS_PER_STATEMENT
}


def finish_completed_sql(returning: bool = False) -> str:
    """UPDATE completing the jobs in ``:done``, a JSON array of ``[id, lease token]`` pairs.

    Completions are nearly every outcome, and they differ only in id and token: one
    statement completes a whole batch, where the multi-row form took one per 64 outcomes and
    bound seven parameters an outcome (raw SQL, 400-job batches: 4.1 against 4.8 µs a job;
    one worker process, alternating bench runs: 66-67k against 74-77k jobs/s).
    """
    return f"""
UPDATE jobs NOT INDEXED SET
    status = 'completed', error_message = NULL, completed_at = :now, active = NULL,
    updated_at = :now, lease_expires_at = NULL
FROM (SELECT value ->> 0 AS id, value ->> 1 AS token FROM json_each(:done)) AS done
WHERE jobs.id = done.id AND jobs.lease_token = done.token AND jobs.status = 'processing'
{"RETURNING jobs.id" if returning else ""}
"""


FINISH_COMPLETED = finish_completed_sql()
FINISH_COMPLETED_RETURNING = finish_completed_sql(returning=True)

RENEW_LEASES = """
UPDATE jobs NOT INDEXED SET lease_expires_at = :expires_at, updated_at = :now
FROM (SELECT value ->> 0 AS id, value ->> 1 AS token FROM json_each(:leases)) AS held
WHERE jobs.id = held.id AND jobs.lease_token = held.token AND jobs.status = 'processing'
RETURNING jobs.id
"""

# A job whose worker stopped renewing goes back to pending with the attempt counted, or to
# failed once its retries are spent. The status guard keeps it idempotent.
RECOVER_STALE_JOBS = f"""
UPDATE jobs INDEXED BY jobs_status_type SET
    status = CASE WHEN retry_count < max_retries THEN 'pending' ELSE 'failed' END,
    completed_at = CASE WHEN retry_count < max_retries THEN NULL ELSE :now END,
    active = CASE WHEN retry_count < max_retries THEN 1 END,
    retry_count = CASE WHEN retry_count < max_retries THEN retry_count + 1 ELSE retry_count END,
    error_message = 'lease expired: worker ' || coalesce(worker_id, '?')
        || ' stopped renewing it (crashed, or hung past job_timeout_minutes)',
    run_at = :now, updated_at = :now, {_LEASE_CLEARED}
WHERE status = 'processing' AND lease_expires_at < :now
RETURNING id, job_type, worker_id, status, error_message
"""

CANCEL_JOB = f"""
UPDATE jobs SET status = 'cancelled', completed_at = :now, updated_at = :now, active = NULL
WHERE id = :id AND status IN {READY}
RETURNING job_type
"""

SELECT_RETRYABLE = """
SELECT job_type, target_id FROM jobs WHERE id = :id AND status IN ('failed', 'cancelled')
"""

RETRY_JOB = """
UPDATE jobs SET status = 'pending', retry_count = 0, run_at = :now, updated_at = :now,
    completed_at = NULL, worker_id = NULL, active = 1
WHERE id = :id AND status IN ('failed', 'cancelled')
RETURNING job_type
"""

DELETE_FINISHED_JOBS = f"""
DELETE FROM jobs INDEXED BY jobs_finished
WHERE status IN {FINISHED_REMOVABLE} AND completed_at < :before
"""

SELECT_JOB = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?"

SELECT_JOBS = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id IN (SELECT value FROM json_each(?))"

_EVENT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
#: Events per statement; a batch is cut into these sizes, largest first.
EVENT_ROWS_PER_STATEMENT = (256, 64, 16, 4, 1)


def insert_events_sql(rows: int) -> str:
    """INSERT of ``rows`` history rows, 8 parameters each."""
    return f"""
INSERT INTO job_events (job_id, event, status, at, worker_id, job_type, error, run_at)
VALUES {", ".join([_EVENT_ROW] * rows)}
"""


INSERT_EVENTS: dict[int, str] = {n: insert_events_sql(n) for n in EVENT_ROWS_PER_STATEMENT}

SELECT_JOB_EVENTS = """
SELECT job_id, event, status, at, worker_id, job_type, error, run_at
FROM job_events WHERE job_id = ? ORDER BY id
"""

DELETE_EVENTS_OF_FINISHED_JOBS = f"""
DELETE FROM job_events WHERE job_id IN (
    SELECT id FROM jobs INDEXED BY jobs_finished
    WHERE status IN {FINISHED_REMOVABLE} AND completed_at < :before
)
"""


def list_jobs_sql(
    by_status: bool,
    by_type: bool,
    *,
    by_target: bool = False,
    by_error: bool = False,
    before: bool = False,
) -> str:
    """SELECT for ``list_jobs`` with the optional filters, newest first.

    ``before`` adds the keyset cursor (``id < :before_id``). Without a status or type
    filter the primary key gives the order (a page reads the rows it shows, plus those the
    other filters skip); with one, :func:`list_ranges_sql` is used instead, and this form
    (which sorts the matching rows) only past :data:`MAX_LIST_RANGES` ranges.
    """
    where = []
    if by_status:
        where.append("status IN (SELECT value FROM json_each(:statuses))")
    if by_type:
        where.append("job_type = :job_type")
    if by_target:
        where.append("target_id = :target_id")
    if by_error:
        where.append("coalesce(error_message, '') = :error_message")
    if before:
        where.append("id < :before_id")
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return f"SELECT {_JOB_COLUMNS} FROM jobs {clause} ORDER BY id DESC LIMIT :limit"


#: Most (status, job type) ranges one ordered listing merges; past that a listing sorts.
MAX_LIST_RANGES = 64

# The job types present in one status, one index probe each (a skip-scan SQLite does not do
# by itself without ANALYZE statistics): a listing filtered by status alone then reads one
# ordered range of jobs_status_type per type instead of sorting every job in the status.
JOB_TYPES_IN_STATUS = """
WITH RECURSIVE types(t) AS (
    SELECT (SELECT min(job_type) FROM jobs INDEXED BY jobs_status_type WHERE status = :status)
    UNION ALL
    SELECT (SELECT min(job_type) FROM jobs INDEXED BY jobs_status_type
            WHERE status = :status AND job_type > types.t)
    FROM types WHERE types.t IS NOT NULL
)
SELECT t FROM types WHERE t IS NOT NULL
"""


def list_ranges_sql(
    ranges: int, *, by_target: bool = False, by_error: bool = False, before: bool = False
) -> str:
    """SELECT for ``list_jobs`` as ``ranges`` ordered ranges of ``jobs_status_type``, merged.

    Range ``i`` is ``status = :s{i} AND job_type = :t{i}``; the index's entries of one
    (status, type) pair are in rowid order, so each range yields its newest ``:limit`` jobs
    below the cursor without sorting, and only those few rows are merged.
    """
    extra = ""
    if by_target:
        extra += " AND target_id = :target_id"
    if by_error:
        extra += " AND coalesce(error_message, '') = :error_message"
    if before:
        extra += " AND id < :before_id"
    arms = " UNION ALL ".join(
        f"SELECT * FROM (SELECT {_JOB_COLUMNS} FROM jobs INDEXED BY jobs_status_type "
        f"WHERE status = :s{i} AND job_type = :t{i}{extra} ORDER BY id DESC LIMIT :limit)"
        for i in range(ranges)
    )
    return f"SELECT * FROM ({arms}) ORDER BY id DESC LIMIT :limit"


# Failed jobs grouped by error and type, largest group first: one pass over the failed rows
# (the dead letter) through jobs_status_type, a table lookup each.
FAILED_GROUPS = """
SELECT coalesce(error_message, ''), job_type, count(*), max(id), max(completed_at)
FROM jobs INDEXED BY jobs_status_type
WHERE status = 'failed'
GROUP BY coalesce(error_message, ''), job_type
ORDER BY count(*) DESC, max(id) DESC
LIMIT :limit
"""

# Jobs finished per time bucket since :since. Completed and cancelled ones are counted from
# the jobs_finished index alone (no table lookups, as the metrics' totals are); cancelled
# and failed ones, few, through jobs_status_type.
FINISHED_BY_BUCKET = f"""
SELECT CAST((completed_at - :since) / :bucket AS INTEGER) AS b, count(*)
FROM jobs INDEXED BY jobs_finished
WHERE status IN {FINISHED_REMOVABLE} AND completed_at >= :since
GROUP BY b
"""

ENDED_BY_BUCKET = """
SELECT CAST((completed_at - :since) / :bucket AS INTEGER) AS b, count(*)
FROM jobs INDEXED BY jobs_status_type
WHERE status = :status AND completed_at >= :since
GROUP BY b
"""


COUNT_BY_STATUS = """
SELECT status, count(*) AS n FROM jobs GROUP BY status
"""

COUNT_DELAYED = """
SELECT count(*) FROM jobs WHERE status = 'pending' AND run_at > :now
"""

COUNT_LIVE_WORKERS = f"""
SELECT count(*) FROM workers
WHERE last_heartbeat + {WORKER_LIVENESS_MULTIPLE} * heartbeat_interval >= :now
"""

UPSERT_WORKER = """
INSERT INTO workers (id, host, pid, started_at, last_heartbeat, heartbeat_interval,
                     jobs_processed, jobs_failed)
VALUES (:id, :host, :pid, :started_at, :last_heartbeat, :heartbeat_interval,
        :jobs_processed, :jobs_failed)
ON CONFLICT (id) DO UPDATE SET
    host = excluded.host, pid = excluded.pid, started_at = excluded.started_at,
    last_heartbeat = excluded.last_heartbeat, heartbeat_interval = excluded.heartbeat_interval,
    jobs_processed = excluded.jobs_processed, jobs_failed = excluded.jobs_failed
"""

DELETE_WORKER = "DELETE FROM workers WHERE id = ?"

PRUNE_WORKERS = f"""
DELETE FROM workers
WHERE last_heartbeat + {WORKER_LIVENESS_MULTIPLE} * heartbeat_interval < :now
"""

SELECT_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
