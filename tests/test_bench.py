"""The benchmark runs end to end with tiny sizes and reports well-formed results.

No test here asserts a speed: only that every phase ran, checked exactly-once delivery and
the queue's counts, and printed and wrote what it should.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncqueue.bench.config import PHASES, SYNC_MODES, BenchConfig
from asyncqueue.bench.joblog import JobLogReader, JobLogWriter
from asyncqueue.bench.machine import machine_info
from asyncqueue.bench.report import render
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.runner import BenchReport

ROOT = Path(__file__).resolve().parent.parent

#: A figure each phase must report, as a positive number.
HEADLINE = {
    "enqueue-sequential": "jobs_s",
    "enqueue-concurrent": "jobs_s",
    "enqueue-many": "jobs_s",
    "process-1": "jobs_s",
    "process-2": "jobs_s",
    "latency-same-process": "p50_ms",
    "latency-cross-process": "p99_ms",
    "idle-cpu": "idle_s",
    "depth": "process_small_pending_jobs_s",
    "memory": "rss_peak_mb",
}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One quick run of every phase at both durabilities (about 20-30 s)."""
    work = tmp_path_factory.mktemp("bench")
    out = work / "out.json"
    command = [
        sys.executable,
        "-m",
        "asyncqueue.bench",
        "--n=200",
        "--quick",
        f"--phases={','.join(PHASES)}",
        "--latency-jobs=50",
        "--idle-seconds=0.5",
        f"--dir={work / 'files'}",
        f"--json={out}",
    ]
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=55
    )
    return {"done": done, "json": json.loads(out.read_text()) if out.exists() else None}


@pytest.mark.timeout(60)
def test_quick_run_passes_every_check(bench_run: dict[str, Any]) -> None:
    done = bench_run["done"]
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert bench_run["json"]["ok"] is True


@pytest.mark.timeout(60)
def test_json_has_every_phase_at_both_durabilities(bench_run: dict[str, Any]) -> None:
    report = bench_run["json"]
    assert report is not None
    assert {"cpu_count", "cpu_model", "python", "sqlite", "aiosqlite", "asyncqueue"} <= set(
        report["machine"]
    )
    assert report["settings"]["n"] == 200
    pairs = [(r["phase"], r["sync"]) for r in report["results"]]
    assert pairs == [(phase, sync) for phase in PHASES for sync in SYNC_MODES]
    for result in report["results"]:
        assert result["error"] is None, result
        assert result["exactly_once"] is True, result
        assert all(check["ok"] for check in result["checks"]), result
        metrics = result["metrics"]
        assert metrics[HEADLINE[result["phase"]]] > 0, result
        assert all(math.isfinite(v) and v >= 0 for v in metrics.values()), result


@pytest.mark.timeout(60)
def test_depth_compares_each_case_with_the_base_case_round_by_round(
    bench_run: dict[str, Any],
) -> None:
    report = bench_run["json"]
    assert report is not None
    assert report["settings"]["depth_rounds"] == 2  # --quick
    for result in report["results"]:
        if result["phase"] != "depth":
            continue
        metrics = result["metrics"]
        for measure in ("process", "enqueue_seq", "enqueue_conc"):
            for case in ("small_pending", "small_completed"):
                low, mid, high = (
                    metrics[f"{measure}_{case}_{kind}jobs_s"] for kind in ("min_", "", "max_")
                )
                assert 0 < low <= mid <= high, (measure, case, low, mid, high)
            assert metrics[f"{measure}_small_completed_vs_small_pct"] > 0
            assert f"{measure}_small_pending_vs_small_pct" not in metrics


@pytest.mark.timeout(60)
def test_table_and_progress_are_printed(bench_run: dict[str, Any]) -> None:
    done = bench_run["done"]
    assert "| phase | measure | NORMAL | FULL | checks |" in done.stdout
    for phase in PHASES:
        assert f"| {phase} |" in done.stdout
    assert "All phases passed" in done.stdout
    assert "SQLite" in done.stdout
    assert "aiosqlite" in done.stdout
    total = len(PHASES) * len(SYNC_MODES)
    for number in range(1, total + 1):
        assert f"[{number}/{total}]" in done.stderr


def test_job_log_counts_duplicates_missing_and_unknown_jobs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.log"
    writer = JobLogWriter(path)
    for job in ("0", "1", "1", "7"):
        writer.record(job)
    writer.close()
    reader = JobLogReader(path)

    assert reader.poll() == 3
    delivery = reader.delivery(range(3))

    assert not delivery.exactly_once
    assert (delivery.duplicated, delivery.missing, delivery.unexpected) == (1, 1, 1)


def test_a_failed_check_is_reported_loudly(tmp_path: Path) -> None:
    failed = PhaseResult("process-1", "NORMAL")
    failed.add("jobs_s", "jobs/s", 123.0)
    failed.check("exactly_once", False, "10 ran of 10 required, 2 duplicated")
    report = BenchReport(machine_info(), BenchConfig(directory=tmp_path), "now", [failed])

    text = render(report)

    assert not report.ok
    assert "**FAILED** (NORMAL)" in text
    assert "2 duplicated" in text


def test_unknown_phase_is_rejected() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncqueue.bench", "--phases=nope"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "unknown phase nope" in done.stderr


@pytest.mark.postgres_only
def test_the_benchmark_runs_on_postgres(db_path: str, tmp_path: Path) -> None:
    """``--db postgresql://...``: each phase in a fresh schema, dropped afterwards."""
    out = tmp_path / "out.json"
    phases = "enqueue-concurrent,enqueue-many,process-2,latency-cross-process,depth"
    command = [
        sys.executable,
        "-m",
        "asyncqueue.bench",
        f"--db={db_path}",
        "--n=200",
        "--quick",
        f"--phases={phases}",
        "--latency-jobs=20",
        "--depth-small=300",
        "--depth-rounds=1",
        f"--dir={tmp_path / 'files'}",
        f"--json={out}",
    ]
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["settings"]["backend"] == "postgres"
    assert report["ok"]


@pytest.mark.timeout(120)
def test_remote_phases_run_through_a_real_server_and_pass_their_checks(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    command = [
        sys.executable,
        "-m",
        "asyncqueue.bench",
        "--remote",
        "--n=300",
        "--sync=NORMAL",
        "--latency-jobs=20",
        f"--dir={tmp_path / 'files'}",
        f"--json={out}",
    ]
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"]
    phases = [result["phase"] for result in report["results"]]
    assert phases == ["remote-1", "remote-4", "remote-8", "latency-remote"]
    for result in report["results"]:
        checks = {check["name"]: check["ok"] for check in result["checks"]}
        wanted = ("exactly_once", "server_clean_stop", "queue_stats", "clean_stop")
        assert all(checks[name] for name in wanted), result
