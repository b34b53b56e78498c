"""``asyncqueue worker``: a real worker process, stopped by real signals."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Background, cli, cli_json, ok, user_error, wait_until
from support import db_exists

from asyncqueue.signals import on_signals, stop_on_signals


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


def _enqueue_gated(db: Path, markers: Path, target: str) -> int:
    out = ok(cli(db, "enqueue", "gated", target, "--metadata", f'{{"markers": "{markers}"}}'))
    return int(out)


def _job(db: Path, job_id: int) -> dict[str, object]:
    job: dict[str, object] = cli_json(db, "job", str(job_id))["job"]
    return job


def test_sigterm_lets_the_running_job_finish_then_exits_0(db_path: Path, markers: Path) -> None:
    job_id = _enqueue_gated(db_path, markers, "slow")
    with Background(db_path, "worker", "cli_workers:GatedWorker", "--grace-period", "30") as w:
        wait_until(lambda: (markers / "slow.started").exists(), what="the job to start")

        w.send(signal.SIGTERM)
        w.wait_for_line("SIGTERM received, stopping: running jobs get up to 30s")
        assert w.process.poll() is None, "the worker must wait for its running job"
        assert _job(db_path, job_id)["status"] == "processing"
        (markers / "slow.go").touch()

        assert w.wait() == 0, "".join(w.output("stderr"))
    assert "stopped after 1 job" in "".join(w.output("stderr"))
    job = _job(db_path, job_id)
    assert job["status"] == "completed"
    assert cli_json(db_path, "workers") == [], "a clean stop unregisters the worker"


def test_second_sigterm_puts_the_running_job_back_to_pending(db_path: Path, markers: Path) -> None:
    job_id = _enqueue_gated(db_path, markers, "stuck")
    with Background(db_path, "worker", "cli_workers:GatedWorker") as w:
        wait_until(lambda: (markers / "stuck.started").exists(), what="the job to start")

        w.send(signal.SIGTERM)
        w.wait_for_line("SIGTERM received, stopping")
        w.send(signal.SIGTERM)
        w.wait_for_line("SIGTERM received again, stopping now")

        assert w.wait() == 0, "".join(w.output("stderr"))
    job = _job(db_path, job_id)
    assert job["status"] == "pending"
    assert job["retry_count"] == 0, "a released job keeps its retries"
    assert job["worker_id"] is None
    history = cli_json(db_path, "job", str(job_id))["history"]
    assert [event["event"] for event in history] == ["enqueued", "claimed", "released"]


def test_sigint_stops_an_idle_worker_with_options(db_path: Path) -> None:
    ok(cli(db_path, "enqueue", "a", "first"))
    ok(cli(db_path, "enqueue", "b", "other-type"))
    args = ["--concurrency", "2", "--job-types", "a,c", "--strategy", "fifo"]
    with Background(db_path, "worker", "cli_workers:QuickWorker", "--worker-id", "w-1", *args) as w:
        w.wait_for_line("w-1 running cli_workers:QuickWorker")
        wait_until(
            lambda: cli_json(db_path, "jobs", "--status", "completed"), what="job a to complete"
        )
        workers = cli_json(db_path, "workers")
        assert [(x["worker_id"], x["alive"]) for x in workers] == [("w-1", True)]
        assert workers[0]["jobs_processed"] >= 0

        w.send(signal.SIGINT)
        assert w.wait() == 0, "".join(w.output("stderr"))
    jobs = {job["job_type"]: job["status"] for job in cli_json(db_path, "jobs")}
    assert jobs == {"a": "completed", "b": "pending"}, "--job-types limits what it claims"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:Worker", "cannot import 'no_such_module_xyz'"),
        ("cli_workers:Missing", "module 'cli_workers' has no attribute 'Missing'"),
        ("cli_workers:NotAWorker", "cli_workers:NotAWorker is not a QueueWorker subclass"),
        ("cli_workers:not_a_class", "is not a QueueWorker subclass (it is a function)"),
        ("asyncqueue:QueueWorker", "is QueueWorker itself"),
        ("cli_workers", "expected MODULE:CLASS"),
        ("cli_broken_module:Worker", "RuntimeError: this module is broken on purpose"),
    ],
)
def test_worker_reports_a_bad_class_in_one_line(db_path: Path, spec: str, message: str) -> None:
    line = user_error(cli(db_path, "worker", spec), code=2)
    assert message in line
    assert not db_exists(db_path), "nothing is created for a worker that cannot start"


def test_worker_reports_bad_options_without_a_traceback(db_path: Path) -> None:
    result = cli(db_path, "worker", "cli_workers:QuickWorker", "--concurrency", "0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--concurrency" in result.stderr


# -- asyncqueue.signals, in this process ------------------------------------------------------


async def _until(condition: Callable[[], object]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


async def test_stop_on_signals_stops_gracefully_then_at_once_then_ignores() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.grace_periods: list[float | None] = []

        async def stop(self, grace_period: float | None = None) -> None:
            self.grace_periods.append(grace_period)

    worker = Recorder()
    seen: list[tuple[signal.Signals, int]] = []
    before = signal.getsignal(signal.SIGUSR1)
    async with stop_on_signals(
        worker, signals=[signal.SIGUSR1], on_signal=lambda sig, n: seen.append((sig, n))
    ):
        for count in (1, 2, 3):
            os.kill(os.getpid(), signal.SIGUSR1)
            await _until(lambda count=count: len(seen) == count)
    assert seen == [(signal.SIGUSR1, 1), (signal.SIGUSR1, 2), (signal.SIGUSR1, 3)]
    assert worker.grace_periods == [None, 0.0]
    assert signal.getsignal(signal.SIGUSR1) == before, "the handler is removed on exit"


async def test_on_signals_calls_back_in_the_event_loop() -> None:
    loop = asyncio.get_running_loop()
    calls: list[tuple[signal.Signals, bool]] = []

    def callback(sig: signal.Signals) -> None:
        calls.append((sig, asyncio.get_running_loop() is loop))

    with on_signals(callback, [signal.SIGUSR2]):
        os.kill(os.getpid(), signal.SIGUSR2)
        await _until(lambda: calls)
    assert calls == [(signal.SIGUSR2, True)]


def test_worker_on_a_file_that_is_not_a_queue_fails_in_one_line(tmp_path: Path) -> None:
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database\n" * 200)
    message = user_error(cli(foreign, "worker", "cli_workers:QuickWorker"))
    assert "not a SQLite database" in message
