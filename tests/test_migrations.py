"""Schema migrations: a file written by an earlier version keeps every job and id on open."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from asyncqueue import JobQueue, JobStatus, ManualClock, QueueWorker
from asyncqueue.storage import sqlite_sql as sql

# SQLite files of older schema versions: nothing of it exists on PostgreSQL.
pytestmark = pytest.mark.sqlite_only


class Succeeds(QueueWorker):
    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        return True


def write_version_2_file(path: Path) -> None:
    """A file as schema version 2 left it: jobs in every state, history, a deleted job."""
    with closing(sqlite3.connect(path)) as db:
        for version in (1, 2):
            for statement in sql.MIGRATIONS[version]:
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute(f"PRAGMA application_id = {sql.APPLICATION_ID}")
        insert = (
            "INSERT INTO jobs (job_type, target_id, status, priority, retry_count, max_retries,"
            " attempts, metadata, error_message, worker_id, lease_token, lease_expires_at,"
            " created_at, run_at, started_at, completed_at, updated_at, active)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        rows: list[tuple[Any, ...]] = [
            ("t", "pending", "pending", 3, 0, 3, 0, '{"a":1}', None, None, None, None,
             10.0, 10.0, None, None, 10.0, 1),
            ("t", "running", "processing", 5, 0, 3, 1, "{}", None, "w1", "tok", 9e9,
             11.0, 11.0, 12.0, None, 12.0, 1),
            ("t", "retry", "retry_scheduled", 5, 1, 3, 1, "{}", "ValueError: x", None, None,
             None, 12.0, 99.0, 13.0, None, 13.0, 1),
            ("u", "done", "completed", 5, 0, 3, 1, "{}", None, "w1", None, None,
             13.0, 13.0, 14.0, 15.0, 15.0, None),
            ("u", "dead", "failed", 1, 3, 3, 4, "{}", "RuntimeError: y", "w2", None, None,
             14.0, 14.0, 15.0, 16.0, 16.0, None),
            ("u", "gone", "cancelled", 5, 0, 3, 0, "{}", None, None, None, None,
             15.0, 15.0, None, 16.0, 16.0, None),
            ("u", "deleted", "completed", 5, 0, 3, 1, "{}", None, None, None, None,
             16.0, 16.0, 17.0, 18.0, 18.0, None),
        ]  # fmt: skip
        db.executemany(insert, rows)
        db.execute(
            "INSERT INTO job_events (job_id, event, status, at, job_type)"
            " VALUES (1, 'enqueued', 'pending', 10.0, 't')"
        )
        # Cleanup deleted the newest job: its id must never be given again.
        db.execute("DELETE FROM jobs WHERE target_id = 'deleted'")
        db.commit()


def snapshot(path: Path) -> dict[str, Any]:
    with closing(sqlite3.connect(path)) as db:
        return {
            "jobs": db.execute("SELECT * FROM jobs ORDER BY id").fetchall(),
            "events": db.execute("SELECT * FROM job_events ORDER BY id").fetchall(),
            "sequence": db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"
            ).fetchone()[0],
        }


async def test_a_version_2_file_keeps_every_job_event_and_id(
    db_path: Path, clock: ManualClock
) -> None:
    write_version_2_file(db_path)
    before = snapshot(db_path)
    assert before["sequence"] == 7

    async with JobQueue(db_path, clock=clock) as queue:
        stats = await queue.get_queue_stats()
        new = await queue.enqueue("t", "new")
        duplicate = await queue.enqueue("t", "pending")

    after = snapshot(db_path)
    # Version 4 adds the result column, NULL for every job written before it.
    assert [row[:-1] for row in after["jobs"][:-1]] == before["jobs"]
    assert all(row[-1] is None for row in after["jobs"])
    assert after["events"][: len(before["events"])] == before["events"]
    assert int(new) == 8  # after the deleted job's 7, not after the highest id kept
    assert not duplicate.created
    assert int(duplicate) == 1
    assert (stats.pending_jobs, stats.processing_jobs, stats.completed_jobs) == (1, 1, 1)
    assert (stats.retry_scheduled_jobs, stats.failed_jobs) == (1, 1)
    with closing(sqlite3.connect(db_path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == sql.SCHEMA_VERSION == 5
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        ready_index = db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'jobs_ready_by_priority'"
        ).fetchone()[0]
        assert "(priority, run_at, id)" in ready_index  # version 5's claim order
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert {
        "jobs_active_pair",
        "jobs_ready_by_priority",
        "jobs_finished",
        "jobs_status_type",
        "v_active_jobs",
        "v_worker_status",
        "v_job_type_stats",
    } <= names
    assert "jobs_v3" not in names


async def test_a_migrated_file_is_drained_by_a_worker(db_path: Path, clock: ManualClock) -> None:
    write_version_2_file(db_path)
    async with JobQueue(db_path, clock=clock) as queue:
        await Succeeds(queue).run_until_idle()
        jobs = [await queue.get_job(job_id) for job_id in (1, 2, 3)]
        with closing(sqlite3.connect(db_path)) as db:
            active = db.execute("SELECT id FROM v_active_jobs").fetchall()
    # The pending job and the due retry ran; the running one is still leased to w1.
    assert [job.status if job else None for job in jobs] == [
        JobStatus.COMPLETED,
        JobStatus.PROCESSING,
        JobStatus.COMPLETED,
    ]
    assert active == [(2,)]


def rejected(db: sqlite3.Connection, statement: str) -> bool:
    try:
        db.execute(statement)
    except sqlite3.IntegrityError:
        return True
    return False


@pytest.mark.parametrize("write", ["fresh", "migrated"])
def test_the_rewritten_checks_refuse_what_the_old_ones_refused(db_path: Path, write: str) -> None:
    """Status must be a known one, and ``active`` must agree with it, as before."""
    if write == "migrated":
        write_version_2_file(db_path)
    with closing(sqlite3.connect(db_path)) as db:
        if write == "fresh":
            for version in range(1, sql.SCHEMA_VERSION + 1):
                for statement in sql.MIGRATIONS[version]:
                    db.execute(statement)
        else:
            for statement in sql.MIGRATIONS[3]:
                db.execute(statement)
        table = db.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
        assert "status IN" not in table
        values = "('t', 'x{n}', '{status}', 1, 1, 1, {active})"
        insert = (
            "INSERT INTO jobs (job_type, target_id, status, created_at, run_at, updated_at,"
            " active) VALUES "
        )
        assert rejected(db, insert + values.format(n=1, status="bogus", active="NULL"))
        assert rejected(db, insert + values.format(n=2, status="PENDING", active=1))
        assert rejected(db, insert + values.format(n=3, status="completed", active=1))
        assert rejected(db, insert + values.format(n=4, status="pending", active="NULL"))
        assert rejected(db, insert + values.format(n=5, status="processing", active=0))
        for n, (status, active) in enumerate(
            [("pending", 1), ("retry_scheduled", 1), ("processing", 1), ("completed", "NULL"),
             ("failed", "NULL"), ("cancelled", "NULL")]
        ):  # fmt: skip
            assert not rejected(db, insert + values.format(n=10 + n, status=status, active=active))
        assert rejected(db, "UPDATE jobs SET status = 'completed' WHERE target_id = 'x10'")


async def test_a_connection_open_on_the_file_during_the_migration_keeps_working(
    db_path: Path,
) -> None:
    """An earlier asyncqueue already running on the file: its writes and triggers go on."""
    write_version_2_file(db_path)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as earlier:
        earlier.execute("PRAGMA journal_mode = WAL")
        for trigger in sql.HISTORY_TRIGGERS:
            earlier.execute(trigger)
        earlier.execute("SELECT count(*) FROM jobs").fetchone()  # schema loaded before

        async with JobQueue(db_path) as queue:
            assert (await queue.get_queue_stats()).pending_jobs == 1

        earlier.execute(
            "UPDATE jobs SET status = 'processing', worker_id = 'old', updated_at = 20.0"
            " WHERE target_id = 'pending'"
        )
        earlier.execute(
            "INSERT INTO jobs (job_type, target_id, created_at, run_at, updated_at)"
            " VALUES ('t', 'from-the-old-process', 21.0, 21.0, 21.0)"
        )
        claimed = earlier.execute(
            "SELECT event, worker_id FROM job_events WHERE job_id = 1 ORDER BY id"
        ).fetchall()
        new_id = earlier.execute(
            "SELECT id FROM jobs WHERE target_id = 'from-the-old-process'"
        ).fetchone()[0]
    assert claimed[-1] == ("claimed", "old")
    assert new_id == 8
