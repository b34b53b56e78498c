"""``asyncqueue db ...``: maintenance, and backup and restore while a worker runs."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from cli_helpers import Background, cli, cli_json, ok, user_error, wait_until, with_queue
from conftest import drop_schema
from support import query

from asyncqueue import JobQueue

APPLICATION_ID = 0x41513031


def _enqueue(db: Path, prefix: str, count: int, *, seconds: float = 0.0) -> list[int]:
    async def enqueue(queue: JobQueue) -> list[int]:
        ids = await queue.enqueue_many(
            {"job_type": "quick", "target_id": f"{prefix}-{n}", "metadata": {"seconds": seconds}}
            for n in range(count)
        )
        return [int(job_id) for job_id in ids]

    return with_queue(db, enqueue)


def _completed(db: Path) -> int:
    async def count(queue: JobQueue) -> int:
        return (await queue.get_queue_stats()).completed_jobs

    return with_queue(db, count)


def _read(path: Path, statement: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


def _targets(path: Path) -> set[str]:
    return {str(row[0]) for row in _read(path, "SELECT target_id FROM jobs")}


@pytest.mark.sqlite_only  # SQLite maintenance; see the postgres_only test
def test_check_checkpoint_vacuum_analyze(db_path: Path) -> None:
    _enqueue(db_path, "job", 300)

    assert ok(cli(db_path, "db", "check")) == "ok\n"
    assert ok(cli(db_path, "db", "checkpoint")).endswith("WAL truncated\n")
    assert ok(cli(db_path, "db", "vacuum")).startswith("vacuumed: ")
    assert ok(cli(db_path, "db", "analyze")) == "analyzed\n"
    assert _read(db_path, "SELECT count(*) FROM sqlite_stat1")[0][0] > 0
    assert ok(cli(db_path, "db", "check")) == "ok\n"
    assert len(cli_json(db_path, "jobs", "--limit", "1000")) == 300


def test_check_fails_for_a_damaged_or_foreign_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 500)
    result = cli(garbage, "db", "check")
    assert user_error(result) == "integrity check found 1 problem"
    assert "not a database" in result.stdout

    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.close()
    result = cli(foreign, "db", "check")
    assert result.returncode == 1
    assert "not an asyncqueue database" in result.stdout
    assert "not an asyncqueue database" in user_error(cli(foreign, "db", "vacuum"))
    assert _read(foreign, "SELECT name FROM sqlite_master") == [("customers",)]


@pytest.mark.sqlite_only  # SQLite maintenance; see the postgres_only test
def test_backup_while_a_worker_runs_is_consistent_and_complete(
    db_path: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.db"
    first = _enqueue(db_path, "early", 3000, seconds=0.004)
    with Background(db_path, "worker", "cli_workers:QuickWorker", "--concurrency", "4") as w:
        wait_until(lambda: _completed(db_path) >= 20, what="the worker to get going")
        # Committed while the worker runs, just before the backup starts.
        later = _enqueue(db_path, "late", 200)
        completed_before = _completed(db_path)

        ok(cli(db_path, "db", "backup", str(backup)))

        completed_after = _completed(db_path)
        assert w.process.poll() is None
        assert completed_before < completed_after < len(first) + len(later), (
            "the worker was committing jobs throughout the backup"
        )
        w.send(signal.SIGTERM)
        assert w.wait() == 0

    assert _read(backup, "PRAGMA integrity_check") == [("ok",)]
    assert _read(backup, "PRAGMA application_id") == [(APPLICATION_ID,)]
    ids = {int(str(row[0])) for row in _read(backup, "SELECT id FROM jobs")}
    assert set(first) | set(later) <= ids, "every job committed before the backup is in it"
    statuses = dict(_read(backup, "SELECT status, count(*) FROM jobs GROUP BY status"))
    assert completed_before <= int(str(statuses["completed"])) <= completed_after
    assert not backup.with_name("backup.db-wal").exists(), "the backup is one self-contained file"
    # The backup is a queue of its own.
    assert ok(cli(backup, "db", "check")) == "ok\n"


@pytest.mark.sqlite_only  # SQLite maintenance; see the postgres_only test
def test_backup_refuses_to_overwrite_unless_forced(db_path: Path, tmp_path: Path) -> None:
    _enqueue(db_path, "a", 3)
    backup = tmp_path / "copy.db"
    ok(cli(db_path, "db", "backup", str(backup)))

    _enqueue(db_path, "b", 2)
    message = user_error(cli(db_path, "db", "backup", str(backup)))
    assert message == f"{backup} already exists; choose another path or pass --force"
    assert len(_targets(backup)) == 3

    ok(cli(db_path, "db", "backup", str(backup), "--force"))
    assert len(_targets(backup)) == 5
    assert "the queue's own file" in user_error(
        cli(db_path, "db", "backup", str(db_path), "--force")
    )
    assert "no directory" in user_error(cli(db_path, "db", "backup", str(tmp_path / "x" / "y")))
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


@pytest.mark.sqlite_only  # SQLite maintenance; see the postgres_only test
def test_restore_refuses_while_a_worker_is_active_unless_forced(
    db_path: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.db"
    _enqueue(db_path, "saved", 3)
    ok(cli(db_path, "db", "backup", str(backup)))
    _enqueue(db_path, "after-backup", 2)

    # The worker claims only "other" jobs, so it sits idle but alive on the queue.
    spec = "cli_workers:QuickWorker"
    with Background(db_path, "worker", spec, "--job-types", "other") as w:
        wait_until(
            lambda: cli_json(db_path, "stats")["stats"]["active_workers"] == 1,
            what="the worker to register",
        )
        message = user_error(cli(db_path, "db", "restore", str(backup)))
        assert message == (
            f"refusing to restore: 1 worker active on {db_path}; stop them first, or pass --force"
        )
        assert len(_targets(db_path)) == 5, "nothing changed"

        assert ok(cli(db_path, "db", "restore", str(backup), "--force")) == (
            f"restored {backup}: 3 jobs\n"
        )
        assert _targets(db_path) == {"saved-0", "saved-1", "saved-2"}

        w.send(signal.SIGTERM)
        assert w.wait() == 0, "".join(w.output("stderr"))

    _enqueue(db_path, "after-restore", 1)
    assert cli_json(db_path, "stats")["stats"]["active_workers"] == 0
    ok(cli(db_path, "db", "restore", str(backup)))
    assert _targets(db_path) == {"saved-0", "saved-1", "saved-2"}
    assert ok(cli(db_path, "db", "check")) == "ok\n"
    # The restored queue works: enqueue, and ids go on from the backup's.
    assert int(ok(cli(db_path, "enqueue", "quick", "new"))) > 3


@pytest.mark.parametrize("kind", ["missing", "garbage", "foreign"])
@pytest.mark.sqlite_only  # SQLite maintenance; see the postgres_only test
def test_restore_refuses_what_is_not_an_asyncqueue_backup(
    db_path: Path, tmp_path: Path, kind: str
) -> None:
    _enqueue(db_path, "keep", 2)
    source = tmp_path / "source.db"
    if kind == "garbage":
        source.write_bytes(b"not a database at all" * 400)
    elif kind == "foreign":
        conn = sqlite3.connect(source)
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY)")
        conn.close()

    message = user_error(cli(db_path, "db", "restore", str(source)))
    expected = {
        "missing": f"no backup file at {source}",
        "garbage": "is not a usable asyncqueue backup",
        "foreign": "not an asyncqueue database",
    }[kind]
    assert expected in message
    assert _targets(db_path) == {"keep-0", "keep-1"}


@pytest.mark.sqlite_only  # SQLite maintenance; see the postgres_only test
def test_restore_into_a_new_database_file(db_path: Path, tmp_path: Path) -> None:
    _enqueue(db_path, "x", 4)
    backup = tmp_path / "backup.db"
    ok(cli(db_path, "db", "backup", str(backup)))

    fresh = tmp_path / "fresh.db"
    assert ok(cli(fresh, "db", "restore", str(backup))) == f"restored {backup}: 4 jobs\n"
    assert len(cli_json(fresh, "jobs")) == 4


@pytest.mark.sqlite_only  # SQLite maintenance; see the postgres_only test
def test_checkpoint_reports_busy_while_a_reader_holds_an_old_snapshot(db_path: Path) -> None:
    _enqueue(db_path, "a", 3)
    reader = sqlite3.connect(db_path, isolation_level=None)
    writer = sqlite3.connect(db_path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM jobs").fetchall()
        # Committed after the reader's snapshot: these frames cannot be copied back yet.
        writer.execute("INSERT INTO workers VALUES ('w', 'h', 1, 0, 0, 10, 0, 0)")

        result = cli(db_path, "db", "checkpoint", env={"QUEUE_BUSY_TIMEOUT": "0.1"})
        assert user_error(result).startswith("checkpoint incomplete, the database was busy")

        reader.execute("COMMIT")
        assert ok(cli(db_path, "db", "checkpoint")).endswith("WAL truncated\n")
    finally:
        reader.close()
        writer.close()


@pytest.mark.postgres_only
def test_postgres_check_vacuum_analyze_and_the_sqlite_only_commands(
    db_path: str, tmp_path: Path
) -> None:
    _enqueue(db_path, "job", 300)  # type: ignore[arg-type]

    assert ok(cli(db_path, "db", "check")) == "ok\n"
    assert ok(cli(db_path, "db", "vacuum")).startswith("vacuumed: ")
    assert ok(cli(db_path, "db", "analyze")) == "analyzed\n"
    assert "PostgreSQL checkpoints on its own" in user_error(cli(db_path, "db", "checkpoint"))
    assert "pg_dump" in user_error(cli(db_path, "db", "backup", str(tmp_path / "b.db")))
    (tmp_path / "b.db").write_bytes(b"")
    assert "pg_restore" in user_error(cli(db_path, "db", "restore", str(tmp_path / "b.db")))
    assert len(cli_json(db_path, "jobs", "--limit", "1000")) == 300


@pytest.mark.postgres_only
def test_postgres_reading_commands_never_create_a_schema(db_path: str, pg_schema: str) -> None:
    """A mistyped schema is reported, not created empty (as a missing SQLite file is)."""
    missing = {"QUEUE_DB_SCHEMA": f"{pg_schema}_typo"}
    for args in (("jobs",), ("stats",), ("db", "check"), ("db", "vacuum")):
        message = user_error(cli(db_path, *args, env=missing))
        assert message.startswith("no queue database at "), message
        assert f"schema {pg_schema}_typo" in message
    assert not query(
        db_path,
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = ?",
        [f"{pg_schema}_typo"],
    )


@pytest.mark.postgres_only
def test_postgres_db_check_names_missing_indexes_and_sequences(
    db_path: str, pg_schema: str
) -> None:
    _enqueue(db_path, "job", 3)  # type: ignore[arg-type]
    query(db_path, f"DROP INDEX {pg_schema}.jobs_ready_by_priority")
    query(db_path, f"DROP SEQUENCE {pg_schema}.lease_tokens")
    result = cli(db_path, "db", "check")
    assert result.returncode == 1
    assert f"index {pg_schema}.jobs_ready_by_priority is missing" in result.stdout
    assert f"sequence {pg_schema}.lease_tokens is missing" in result.stdout


@pytest.mark.postgres_only
@pytest.mark.skipif(not shutil.which("pg_dump"), reason="needs pg_dump and pg_restore")
def test_postgres_backup_and_restore_hints_work_as_printed(db_path: str, tmp_path: Path) -> None:
    """The commands `db backup` and `db restore` suggest, run as printed (a mixed-case
    schema name included), bring a dropped queue schema back."""
    schema = f"Aq{uuid.uuid4().hex[:8]}"
    env = {"QUEUE_DB_SCHEMA": schema}
    try:
        ok(cli(db_path, "enqueue", "job", "kept", env=env))
        dump = tmp_path / "queue.dump"
        hints = []
        for verb in ("backup", "restore"):
            message = user_error(cli(db_path, "db", verb, str(dump), env=env))
            hints.append(message.split("e.g. ", 1)[1].split(" (database:")[0])
        url = f"{db_path} --no-password"
        backup, restore = (h.replace("DBNAME", url).replace("queue.dump", str(dump)) for h in hints)
        subprocess.run(["bash", "-c", backup], check=True, timeout=60)
        drop_schema(schema)
        subprocess.run(["bash", "-c", restore], check=True, timeout=60)
        jobs = json.loads(ok(cli(db_path, "jobs", "--json", env=env)))
        assert [job["target_id"] for job in jobs] == ["kept"]
    finally:
        drop_schema(schema)
