"""Run worker processes on a pre-filled file until enough jobs started, then stop them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asyncqueue.bench.config import DbLocation
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.joblog import JobLogReader
from asyncqueue.bench.procs import WorkerProcess, any_exited, stop_workers, wait_for_jobs
from asyncqueue.bench.result import PhaseResult


@dataclass(frozen=True, slots=True)
class DrainOutcome:
    """How a run of worker processes went."""

    finished: bool
    spawned_at: float
    problems: list[str]


async def run_workers(
    ctx: PhaseContext,
    db: DbLocation,
    log: Path,
    reader: JobLogReader,
    *,
    processes: int = 1,
    name: str = "",
    until: Callable[[], bool],
    on_poll: Callable[[Sequence[WorkerProcess]], None] | None = None,
    url: str | None = None,
) -> DrainOutcome:
    """Start ``processes`` workers, wait until ``until()`` (or a stall), SIGTERM them all.

    With ``url`` they are remote workers on that API instead of workers on ``db``.

    ``name`` tells apart the output files of several runs in one phase.

    The log is read once more after the workers exited, so runs they made while stopping
    (a duplicate, say) are counted too.
    """
    spawned_at = time.time()
    workers = [await ctx.spawn(db, log, f"{name}-w{k}", url) for k in range(processes)]
    try:
        finished = await wait_for_jobs(
            reader,
            until,
            gave_up=any_exited(workers),
            stall_timeout=ctx.config.stall_timeout,
            on_poll=None if on_poll is None else lambda: on_poll(workers),
        )
    finally:
        problems = await stop_workers(workers)
    reader.poll()
    return DrainOutcome(finished, spawned_at, problems)


def record_outcome(result: PhaseResult, outcome: DrainOutcome, reader: JobLogReader) -> None:
    """Check that the wait ended because the work was done, and the workers stopped cleanly."""
    result.check(
        "finished",
        outcome.finished,
        "" if outcome.finished else f"stalled or a worker died after {len(reader.runs)} jobs",
    )
    result.check("clean_stop", not outcome.problems, "; ".join(outcome.problems))


def throughput(starts: Sequence[float]) -> float | None:
    """Jobs per second between the first and the last job start (None below two jobs)."""
    if len(starts) < 2 or starts[-1] <= starts[0]:
        return None
    return (len(starts) - 1) / (starts[-1] - starts[0])
