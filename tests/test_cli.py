"""The ``asyncqueue`` command, every command through a real subprocess.

Queues are set up (and sometimes checked) with the library in this process; the commands
under test always run as ``python -m asyncqueue --db DB ...``.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Background, cli, cli_json, ok, user_error, with_queue
from support import db_exists, query

from asyncqueue import JobQueue, QueueWorker
from asyncqueue.cli.status import collect_stats, render_stats
from asyncqueue.storage.base import WorkerRecord


class Outcomes(QueueWorker):
    """Fails the jobs whose metadata says so, completes the others."""

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        if metadata.get("fail"):
            raise ValueError(f"{target_id} broke")
        return True


async def _seed(queue: JobQueue) -> dict[str, int]:
    """One job in each status: 2 email + 1 sms finished or failed, 3 waiting."""
    ids = {
        "done": await queue.enqueue("email", "done"),
        "dead": await queue.enqueue("email", "dead", max_retries=0, metadata={"fail": True}),
        "retrying": await queue.enqueue("sms", "retrying", max_retries=2, metadata={"fail": 1}),
    }
    await Outcomes(queue).run_until_idle()
    ids["waiting"] = await queue.enqueue("sms", "waiting", priority=1)
    ids["later"] = await queue.enqueue("sms", "later", delay=3600)
    ids["dropped"] = await queue.enqueue("email", "dropped")
    await queue.cancel_job(ids["dropped"])
    return {name: int(job_id) for name, job_id in ids.items()}


@pytest.fixture
def seeded(db_path: Path) -> dict[str, int]:
    """A queue with a job in each status; the ids by name."""
    return with_queue(db_path, _seed, retry_base_delay=3600)


def test_help_lists_every_command(db_path: Path) -> None:
    out = ok(cli(db_path, "--help"))
    for name in ("worker", "enqueue", "stats", "jobs", "job", "failed", "retry", "cancel"):
        assert re.search(rf"^  {name}\b", out, re.MULTILINE), name
    for name in ("recover", "cleanup", "workers", "db"):
        assert re.search(rf"^  {name}\b", out, re.MULTILINE), name
    assert "backup" in ok(cli(db_path, "db", "--help"))


# -- enqueue -------------------------------------------------------------------------------


def test_enqueue_prints_the_id_and_says_when_it_was_a_duplicate(db_path: Path) -> None:
    first = cli(db_path, "enqueue", "email", "user-1", "--metadata", '{"lang": "fr"}')
    assert ok(first) == "1\n"
    assert first.stderr == ""

    again = cli(db_path, "enqueue", "email", "user-1")
    assert ok(again) == "1\n"
    assert "job 1 is already active for (email, user-1): nothing enqueued" in again.stderr

    created = cli_json(
        db_path, "enqueue", "email", "user-2", "--priority", "2", "--delay", "60",
        "--max-retries", "7",
    )  # fmt: skip
    assert created["created"] is True
    job_id = created["id"]
    assert cli_json(db_path, "enqueue", "email", "user-2") == {"id": job_id, "created": False}

    job = cli_json(db_path, "job", str(job_id))["job"]
    assert (job["priority"], job["max_retries"], job["status"]) == (2, 7, "pending")
    assert job["run_at"] > job["created_at"], "--delay postpones the job"
    assert cli_json(db_path, "job", "1")["job"]["metadata"] == {"lang": "fr"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--metadata", "[1, 2]"], "must be a JSON object"),
        (["--metadata", "{oops"], "not valid JSON"),
        (["--metadata", '{"a":' * 20_000 + "1" + "}" * 20_000], "nested too deeply"),
        (["--priority", "11"], "--priority"),
        (["--delay", "-1"], "--delay"),
    ],
)
def test_enqueue_rejects_bad_arguments(db_path: Path, args: list[str], fragment: str) -> None:
    result = cli(db_path, "enqueue", "email", "user-1", *args)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert not db_exists(db_path)


def test_a_job_id_beyond_64_bits_is_one_line_and_exit_2(db_path: Path) -> None:
    ok(cli(db_path, "enqueue", "email", "user-1"))
    for command in ("job", "cancel", "retry"):
        message = user_error(cli(db_path, command, str(2**70)), code=2)
        assert "64 bits" in message, command


def test_enqueue_reports_library_validation_in_one_line(db_path: Path) -> None:
    message = user_error(cli(db_path, "enqueue", "email", "x" * 300), code=2)
    assert "target_id" in message


def test_a_bad_environment_setting_is_one_line(db_path: Path) -> None:
    result = cli(db_path, "stats", env={"QUEUE_MAX_RETRIES": "many"})
    assert "QUEUE_MAX_RETRIES" in user_error(result, code=2)


# -- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["stats"],
        ["jobs"],
        ["job", "1"],
        ["failed"],
        ["retry", "1"],
        ["retry", "--all-failed"],
        ["cancel", "1"],
        ["recover"],
        ["cleanup"],
        ["workers"],
        ["db", "check"],
        ["db", "checkpoint"],
        ["db", "vacuum"],
        ["db", "analyze"],
        ["db", "backup", "copy.db"],
    ],
    ids=" ".join,
)
@pytest.mark.sqlite_only  # a PostgreSQL queue's schema is created on first use
def test_commands_refuse_a_missing_database(db_path: Path, args: list[str]) -> None:
    assert user_error(cli(db_path, *args)) == f"no queue database at {db_path}"
    assert not db_path.exists(), "a read never creates an empty database"


def test_stats_counts_by_status_type_and_workers(db_path: Path, seeded: dict[str, int]) -> None:
    report = cli_json(db_path, "stats")

    assert report["database"] == str(db_path)
    assert report["stats"] == {
        "total_jobs": 6,
        "pending_jobs": 2,
        "processing_jobs": 0,
        "retry_scheduled_jobs": 1,
        "completed_jobs": 1,
        "failed_jobs": 1,
        "cancelled_jobs": 1,
        "delayed_jobs": 1,
        "active_workers": 0,
    }
    assert report["by_type"] == {
        "email": {"cancelled": 1, "completed": 1, "failed": 1},
        "sms": {"pending": 2, "retry_scheduled": 1},
    }
    if hasattr(JobQueue, "get_metrics"):
        metrics = report["metrics"]
        assert metrics["completed_last_hour"] == 1
        assert metrics["failed_in_window"] == 1
        assert set(metrics["by_type"]) == {"email", "sms"}
    else:
        assert report["metrics"] is None

    text = ok(cli(db_path, "stats"))
    assert re.search(r"^active workers\s+0$", text, re.MULTILINE)
    assert re.search(r"^pending\s+2\s+\(1 delayed\)$", text, re.MULTILINE)
    assert re.search(r"^email\s+0\s+0\s+0\s+1\s+1\s+1\s+3$", text, re.MULTILINE)
    assert re.search(r"^sms\s+2\s+0\s+1\s+0\s+0\s+0\s+3$", text, re.MULTILINE)


async def test_stats_shows_metrics_when_the_queue_has_them_and_degrades_without(
    queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Metrics:
        def to_dict(self) -> dict[str, Any]:
            return {
                "window_seconds": 3600.0,
                "completed_last_minute": 4,
                "completed_last_hour": 40,
                "completed_in_window": 40,
                "failed_in_window": 2,
                "failure_rate": 2 / 42,
                "oldest_pending_age_seconds": 125.0,
                "by_type": {
                    "email": {
                        "completed": 40,
                        "failed": 2,
                        "processing_p50": 0.25,
                        "processing_p95": 1.5,
                        "processing_p99": 3.0,
                    }
                },
            }

    async def get_metrics(window: float) -> Metrics:
        assert window == 3600.0
        return Metrics()

    monkeypatch.setattr(queue, "get_metrics", get_metrics, raising=False)
    text = render_stats(await collect_stats(queue, 3600.0))
    assert "throughput       4 completed in the last minute, 40 in the last hour" in text
    assert "failure rate     4.8% over the last 1h 00m (2 failed, 40 completed)" in text
    assert "oldest pending   2m 05s" in text
    assert re.search(r"^email\s+40\s+2\s+250ms\s+1.5s\s+3.0s$", text, re.MULTILINE)

    monkeypatch.setattr(queue, "get_metrics", None, raising=False)
    report = await collect_stats(queue, 3600.0)
    assert report["metrics"] is None
    assert "throughput" not in render_stats(report)


def test_stats_watch_refreshes_until_ctrl_c(db_path: Path, seeded: dict[str, int]) -> None:
    with Background(db_path, "stats", "--watch", "0.1", "--json") as watch:
        watch.wait_for_line('"total_jobs":6', stream="stdout")
        watch.wait_for_line('"total_jobs":6', stream="stdout")
        watch.send(signal.SIGINT)
        assert watch.wait() == 0, "".join(watch.output("stderr"))
    reports = [json.loads(line) for line in watch.output("stdout")]
    assert len(reports) >= 2
    assert "Traceback" not in "".join(watch.output("stderr"))


def test_jobs_lists_and_filters(db_path: Path, seeded: dict[str, int]) -> None:
    every = cli_json(db_path, "jobs")
    assert [job["id"] for job in every] == sorted(seeded.values(), reverse=True)

    sms = cli_json(db_path, "jobs", "--type", "sms", "--status", "pending")
    assert {job["target_id"] for job in sms} == {"waiting", "later"}
    both = cli_json(db_path, "jobs", "--status", "failed", "--status", "cancelled")
    assert {job["target_id"] for job in both} == {"dead", "dropped"}
    assert len(cli_json(db_path, "jobs", "--limit", "2")) == 2

    text = ok(cli(db_path, "jobs", "--status", "failed"))
    header, row = text.splitlines()
    assert header.split()[:4] == ["ID", "TYPE", "TARGET", "STATUS"]
    assert "ValueError: dead broke" in row
    assert cli(db_path, "jobs", "--status", "bogus").returncode == 2


def test_job_shows_the_record_and_its_history(db_path: Path, seeded: dict[str, int]) -> None:
    shown = cli_json(db_path, "job", str(seeded["retrying"]))
    assert shown["job"]["status"] == "retry_scheduled"
    assert shown["job"]["error_message"] == "ValueError: retrying broke"
    events = [event["event"] for event in shown["history"]]
    assert events == ["enqueued", "claimed", "retry_scheduled"]
    assert shown["history"][-1]["error"] == "ValueError: retrying broke"

    text = ok(cli(db_path, "job", str(seeded["retrying"])))
    assert re.search(r"^status\s+retry_scheduled$", text, re.MULTILINE)
    assert re.search(r"retry_scheduled\s+retry_scheduled\s+\S+\s+ValueError", text)

    assert user_error(cli(db_path, "job", "999")) == "no job with id 999"


def test_failed_retry_and_cancel(db_path: Path, seeded: dict[str, int]) -> None:
    failed = cli_json(db_path, "failed")
    assert [job["id"] for job in failed] == [seeded["dead"]]
    assert failed[0]["error_message"] == "ValueError: dead broke"

    assert (
        ok(cli(db_path, "retry", str(seeded["dead"]))) == f"job {seeded['dead']} is pending again\n"
    )
    job = cli_json(db_path, "job", str(seeded["dead"]))
    assert (job["job"]["status"], job["history"][-1]["event"]) == ("pending", "retried")
    assert "only failed or cancelled jobs can be retried" in user_error(
        cli(db_path, "retry", str(seeded["dead"]))
    )
    assert user_error(cli(db_path, "retry", "999")) == "no job with id 999"
    assert ok(cli(db_path, "failed")) == "no failed jobs\n"

    assert (
        ok(cli(db_path, "cancel", str(seeded["waiting"]))) == f"job {seeded['waiting']} cancelled\n"
    )
    assert "only pending or retry_scheduled jobs can be cancelled" in user_error(
        cli(db_path, "cancel", str(seeded["waiting"]))
    )
    assert user_error(cli(db_path, "cancel", "999")) == "no job with id 999"
    # A cancelled job can be retried too.
    ok(cli(db_path, "retry", str(seeded["waiting"])))
    assert cli_json(db_path, "job", str(seeded["waiting"]))["job"]["status"] == "pending"

    usage = cli(db_path, "retry")
    assert usage.returncode == 2
    assert "give either a JOB_ID or --all-failed" in usage.stderr


def test_retry_all_failed_by_type_and_skips_active_duplicates(db_path: Path) -> None:
    async def fail_some(queue: JobQueue) -> None:
        for job_type, target in [("email", "a"), ("email", "b"), ("sms", "c")]:
            await queue.enqueue(job_type, target, max_retries=0, metadata={"fail": True})
        await Outcomes(queue).run_until_idle()
        await queue.enqueue("email", "b")  # an active duplicate holds (email, b)

    with_queue(db_path, fail_some)

    out = ok(cli(db_path, "retry", "--all-failed", "--type", "email"))
    assert (
        out == "retried 1 failed job; 1 left failed: an active job holds the same type and target\n"
    )
    assert {job["target_id"] for job in cli_json(db_path, "failed")} == {"b", "c"}
    assert ok(cli(db_path, "retry", "--all-failed")) == (
        "retried 1 failed job; 1 left failed: an active job holds the same type and target\n"
    )
    assert [job["target_id"] for job in cli_json(db_path, "failed")] == ["b"]


def test_recover_takes_back_jobs_whose_lease_expired(db_path: Path) -> None:
    async def claim_and_abandon(queue: JobQueue) -> None:
        await queue.enqueue("email", "abandoned")
        await queue.claim("crashed-worker", limit=1)

    # A lease of 30 ms: the claim is stale by the time the command runs.
    with_queue(db_path, claim_and_abandon, job_timeout_minutes=0.0005)
    time.sleep(0.05)

    assert ok(cli(db_path, "recover")) == "recovered 1 stale job\n"
    job = cli_json(db_path, "job", "1")
    assert job["job"]["status"] == "pending"
    assert job["job"]["retry_count"] == 1, "the crashed attempt counts"
    assert job["history"][-1]["event"] == "recovered"
    assert ok(cli(db_path, "recover")) == "recovered 0 stale jobs\n"


def test_cleanup_deletes_old_finished_jobs(db_path: Path, seeded: dict[str, int]) -> None:
    assert ok(cli(db_path, "cleanup")) == "deleted 0 finished jobs older than 7 days\n"
    assert ok(cli(db_path, "cleanup", "--days", "0")) == (
        "deleted 2 finished jobs older than 0 days\n"
    )
    remaining = {job["target_id"] for job in cli_json(db_path, "jobs")}
    assert remaining == {"dead", "retrying", "waiting", "later"}, "failed jobs stay"
    assert cli(db_path, "cleanup", "--days", "-1").returncode == 2


def test_workers_lists_rows_with_an_alive_flag(db_path: Path) -> None:
    now = time.time()

    async def register(queue: JobQueue) -> None:
        await queue.record_worker(WorkerRecord("live", "host-1", 4242, now - 60, now, 10.0, 5, 1))

    with_queue(db_path, register)
    # A dead worker's row, as a crashed worker leaves it (record_worker would prune it).
    query(
        db_path,
        "INSERT INTO workers VALUES ('gone', 'host-2', 7, ?, ?, 10.0, 3, 0)",
        (now - 7200, now - 3600),
    )

    workers = cli_json(db_path, "workers")
    assert [(w["worker_id"], w["alive"]) for w in workers] == [("gone", False), ("live", True)]
    live = workers[1]
    assert (live["host"], live["pid"], live["jobs_processed"], live["jobs_failed"]) == (
        "host-1",
        4242,
        5,
        1,
    )
    assert live["running_jobs"] == 0

    text = ok(cli(db_path, "workers"))
    assert re.search(r"^live\s+host-1\s+4242\s+yes\s+0\s+5\s+1\s", text, re.MULTILINE)
    assert re.search(r"^gone\s+host-2\s+7\s+no\s", text, re.MULTILINE)
    assert cli_json(db_path, "stats")["stats"]["active_workers"] == 1


def test_workers_with_none_registered(db_path: Path, seeded: dict[str, int]) -> None:
    assert ok(cli(db_path, "workers")) == "no workers registered\n"
    assert cli_json(db_path, "workers") == []
