"""Runs the chosen phases at each durability setting, one after another, with progress lines."""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from asyncqueue.bench.config import BenchConfig, Sync
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.liblog import EventCounter, configure_library_logging, count_logged_events
from asyncqueue.bench.machine import Machine, machine_info
from asyncqueue.bench.phases import RUNNERS
from asyncqueue.bench.result import PhaseResult


@dataclass(slots=True)
class BenchReport:
    """A whole run: where, with which settings, and every phase's result."""

    machine: Machine
    config: BenchConfig
    started_at: str
    results: list[PhaseResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every phase passed every check."""
        return all(result.ok for result in self.results)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole run."""
        return {
            "ok": self.ok,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 1),
            "machine": self.machine.to_json(),
            "settings": self.config.describe(),
            "results": [result.to_json() for result in self.results],
        }


async def run_benchmark(config: BenchConfig, progress: TextIO = sys.stderr) -> BenchReport:
    """Run every chosen phase at every chosen durability; print a line per phase to ``progress``."""
    config.directory.mkdir(parents=True, exist_ok=True)
    counter = EventCounter()
    library_log = (config.directory / "library-log.jsonl").open("a")
    configure_library_logging(library_log, counter)
    try:
        return await _run_plan(config, counter, progress)
    finally:
        structlog.reset_defaults()
        library_log.close()


async def _run_plan(config: BenchConfig, counter: EventCounter, progress: TextIO) -> BenchReport:
    report = BenchReport(
        machine=machine_info(),
        config=config,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    started = time.perf_counter()
    plan = [(phase, sync) for phase in config.phases for sync in config.syncs]
    for number, (phase, sync) in enumerate(plan, 1):
        step = f"[{number}/{len(plan)}] {phase} ({sync})"
        print(f"{step} ...", file=progress, flush=True)
        result = await run_phase(config, phase, sync, counter)
        print(f"{step} {result.summary()} [{result.seconds:.1f} s]", file=progress, flush=True)
        report.results.append(result)
    report.seconds = time.perf_counter() - started
    return report


async def run_phase(
    config: BenchConfig, phase: str, sync: Sync, counter: EventCounter | None = None
) -> PhaseResult:
    """Run one phase on fresh files; an exception becomes the result's error, not a crash."""
    ctx = PhaseContext(config, sync, phase)
    result = PhaseResult(phase, sync)
    started = time.perf_counter()
    try:
        await RUNNERS[phase](ctx, result)
    except Exception as exc:  # noqa: BLE001 - a broken phase is reported, the rest still run
        result.error = f"{type(exc).__name__}: {exc}"
        result.notes.append(traceback.format_exc(limit=-4))
    finally:
        ctx.cleanup()
        result.seconds = time.perf_counter() - started
    events = count_logged_events(ctx.worker_outputs)
    if counter is not None:
        events.update(counter.take())
    result.log_events = dict(events.most_common())
    return result
