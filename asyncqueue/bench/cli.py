"""``python -m asyncqueue.bench``: arguments in, table on stdout, progress on stderr."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from asyncqueue.bench.config import (
    ALL_PHASES,
    DEFAULT_DEPTH_CASES,
    DEPTH_CASES,
    MEMORY_JOBS,
    PHASES,
    QUICK_DEPTH_CASES,
    REMOTE_PHASES,
    SYNC_MODES,
    BenchConfig,
    Sync,
)
from asyncqueue.bench.report import render, write_json
from asyncqueue.bench.runner import run_benchmark
from asyncqueue.config import is_postgres_url


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncqueue.bench",
        description="Benchmark asyncqueue: enqueue, processing, latency, idle CPU, depth, memory. "
        "Every phase checks that each job ran exactly once. Exits 1 if any check failed.",
    )
    parser.add_argument("--n", type=_positive, default=10_000, help="jobs per phase (10000)")
    parser.add_argument("--concurrency", type=_positive, default=10, help="per worker (10)")
    parser.add_argument("--sync", choices=("NORMAL", "FULL", "both"), default="both")
    parser.add_argument("--phases", type=_phases, default=None, help="comma-separated")
    parser.add_argument(
        "--remote",
        action="store_true",
        help="run the remote phases (workers through 'asyncqueue serve'): "
        + ", ".join(REMOTE_PHASES),
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip the 1M cases, smaller memory run"
    )
    parser.add_argument("--dir", type=Path, default=None, help="work directory (a new temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument("--producers", type=_positive, default=50)
    parser.add_argument("--chunk", type=_positive, default=1_000, help="enqueue_many chunk")
    parser.add_argument("--latency-jobs", type=_positive, default=200)
    parser.add_argument("--idle-seconds", type=float, default=2.0)
    parser.add_argument("--memory-jobs", type=_positive, default=None, help=f"({MEMORY_JOBS})")
    parser.add_argument(
        "--depth-small", type=_positive, default=None, help="(10000; --quick: at most 10 * n)"
    )
    parser.add_argument("--depth-big", type=_positive, default=1_000_000)
    parser.add_argument(
        "--depth-cases", type=_depth_cases, default=None, help=", ".join(DEPTH_CASES)
    )
    parser.add_argument(
        "--depth-rounds",
        type=_positive,
        default=None,
        help="drains per depth case, taken in turns (3; --quick: 2)",
    )
    parser.add_argument("--poll-interval", type=float, default=None, help="QueueWorker's")
    parser.add_argument("--stall-timeout", type=float, default=60.0, help="seconds")
    parser.add_argument("--keep-files", action="store_true", help="keep the database files")
    parser.add_argument(
        "--db",
        default=None,
        help="a postgresql:// URL: run on PostgreSQL, a fresh schema per phase (default: "
        "SQLite files in --dir)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """Settings from parsed arguments, with ``--quick``'s smaller defaults."""
    syncs: tuple[Sync, ...] = SYNC_MODES if args.sync == "both" else (args.sync,)
    if args.db is not None:
        if not is_postgres_url(args.db):
            raise SystemExit(f"--db must be a postgresql:// URL, got {args.db!r}")
        # synchronous is SQLite's setting: one pass on PostgreSQL.
        syncs = syncs[:1]
    memory_jobs = args.memory_jobs
    if memory_jobs is None:
        memory_jobs = min(MEMORY_JOBS, 2 * args.n) if args.quick else MEMORY_JOBS
    depth_cases = args.depth_cases
    if depth_cases is None:
        depth_cases = QUICK_DEPTH_CASES if args.quick else DEFAULT_DEPTH_CASES
    depth_small = args.depth_small
    if depth_small is None:
        depth_small = min(10_000, 10 * args.n) if args.quick else 10_000
    depth_rounds = args.depth_rounds or (2 if args.quick else 3)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="asyncqueue-bench-"))
    phases = args.phases
    if phases is None:
        phases = REMOTE_PHASES if args.remote else PHASES
    elif args.remote:
        phases = tuple(p for p in ALL_PHASES if p in phases or p in REMOTE_PHASES)
    return BenchConfig(
        directory=directory,
        n=args.n,
        concurrency=args.concurrency,
        syncs=syncs,
        phases=phases,
        quick=args.quick,
        json_path=args.json,
        producers=args.producers,
        chunk=args.chunk,
        latency_jobs=args.latency_jobs,
        idle_seconds=args.idle_seconds,
        memory_jobs=memory_jobs,
        depth_small=depth_small,
        depth_big=args.depth_big,
        depth_cases=depth_cases,
        depth_rounds=depth_rounds,
        poll_interval=args.poll_interval,
        stall_timeout=args.stall_timeout,
        keep_files=args.keep_files,
        db_url=args.db,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the report; return 0 if every check passed, else 1."""
    config = config_from_args(build_parser().parse_args(argv))
    report = asyncio.run(run_benchmark(config))
    sys.stdout.write(render(report))
    sys.stdout.flush()
    if config.json_path is not None:
        write_json(report, config.json_path)
    if not report.ok:
        print("asyncqueue.bench: FAILED, see the table above", file=sys.stderr)
    return 0 if report.ok else 1


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {raw}")
    return value


def _names(raw: str, valid: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(valid)}"
        )
    return names


def _phases(raw: str) -> tuple[str, ...]:
    chosen = set(_names(raw, ALL_PHASES, "phase"))
    return tuple(phase for phase in ALL_PHASES if phase in chosen)


def _depth_cases(raw: str) -> tuple[str, ...]:
    return _names(raw, DEPTH_CASES, "depth case")
