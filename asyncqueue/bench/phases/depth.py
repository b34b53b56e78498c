"""Depth phase: do enqueue and processing stay fast as the backlog grows?

Each case pre-fills a backlog of B jobs (``--depth-small`` 10k or ``--depth-big`` 1M, with
``enqueue_many`` in large chunks); a ``*-completed`` case then runs its backlog to
completion in this process, so its rows are kept. Then, ``--depth-rounds`` times, every
case in turn has one worker process drain jobs:

- ``*-pending``: until min(N, B) jobs started, out of B pending; the queue is then topped
  back up to B pending (untimed);
- ``*-completed``: N jobs are added (untimed) and drained, beside the completed rows.

The cases take turns within a round, so the machine's slow and quick spells fall on all of
them alike: each round's rate is compared with the small pending case's in the same round,
and the median of those ratios is reported with the median rate of each case. Enqueues are
timed the same way, after the drains: in each round, every case in turn takes N / rounds
sequential and N / rounds concurrent enqueues on top of its backlog.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from asyncqueue import JobId, JobQueue
from asyncqueue.bench.checks import check_delivery, check_drained, check_enqueued
from asyncqueue.bench.config import DbLocation
from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.drain import record_outcome, run_workers, throughput
from asyncqueue.bench.joblog import JobLogReader
from asyncqueue.bench.recorder import NoopWorker
from asyncqueue.bench.result import PhaseResult
from asyncqueue.bench.workload import FillError, enqueue_concurrent, enqueue_sequential, fill

#: What each round measures, and how the table names it.
_MEASURES = {"process": "process", "enqueue_seq": "enqueue seq", "enqueue_conc": "enqueue 50 conc"}
_BASE_CASE = "small-pending"


@dataclass(slots=True)
class _Ids:
    """Hands out consecutive job numbers, so every job of a case has its own."""

    next: int = 0

    def take(self, count: int) -> range:
        taken = range(self.next, self.next + count)
        self.next += count
        return taken


@dataclass(slots=True)
class _Case:
    """One depth case's file, job numbers and what its rounds measured."""

    name: str
    size: int
    completed: bool
    db: DbLocation
    log: Path
    reader: JobLogReader
    ids: _Ids = field(default_factory=_Ids)
    #: Jobs that must run (a completed case's drained jobs); any other job may.
    required: list[range] = field(default_factory=list)
    #: Jobs already counted in an earlier round's rate.
    counted: set[int] = field(default_factory=set)
    #: Per round: "process", "enqueue_seq" and "enqueue_conc" rates, jobs/s.
    rates: dict[str, list[float]] = field(default_factory=dict)
    enqueued: list[JobId] = field(default_factory=list)

    def record(self, measure: str, rate: float) -> None:
        self.rates.setdefault(measure, []).append(rate)

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    @property
    def label(self) -> str:
        return depth_label(self.size, self.completed)

    def jobs_run(self) -> int:
        return len(self.reader.runs)


async def depth_phase(ctx: PhaseContext, result: PhaseResult) -> None:
    """Every configured depth case: prepared once, then drained and enqueued to in turns."""
    rounds = ctx.config.depth_rounds
    cases = [await _prepare(ctx, result, name) for name in ctx.config.depth_cases]
    for round_number in range(rounds):
        for case in cases:
            await _drain_round(ctx, result, case, round_number)
    for case in cases:
        required = [job for jobs in case.required for job in jobs]
        delivery = case.reader.delivery(required=required, allowed=range(case.ids.next))
        check_delivery(result, delivery)
        await _top_up(ctx, case)
    # The enqueues of all rounds add 2N jobs to each backlog, as one timing of N each did.
    per_round = max(1, ctx.config.n // rounds)
    for _ in range(rounds):
        for case in cases:
            await _enqueue_round(ctx, case, per_round)
    for case in cases:
        check_enqueued(result, case.enqueued, 2 * per_round * rounds)
        done = (case.size if case.completed else 0) + case.jobs_run()
        check_drained(result, await ctx.stats(case.db), total=case.ids.next, completed=done)
    base = next((c for c in cases if c.name == _BASE_CASE), None)
    for measure, label in _MEASURES.items():
        for case in cases:
            _add_figures(result, case, base, measure, label)


async def _prepare(ctx: PhaseContext, result: PhaseResult, name: str) -> _Case:
    config = ctx.config
    log, reader = ctx.job_log(f"-{name}")
    case = _Case(
        name,
        config.depth_size(name),
        name.endswith("-completed"),
        ctx.database(f"-{name}"),
        log,
        reader,
    )
    async with ctx.queue(case.db) as queue:
        fill_s = await fill(queue, case.ids.take(case.size), config.fill_chunk)
        result.add(f"fill_{case.key}_s", f"fill s, {case.label}", fill_s, 1, detail=True)
        if case.completed:
            complete_s = await _complete(ctx, queue, case.size)
            result.add(
                f"complete_{case.key}_s", f"complete s, {case.label}", complete_s, 1, detail=True
            )
    return case


async def _drain_round(
    ctx: PhaseContext, result: PhaseResult, case: _Case, round_number: int
) -> None:
    """One worker process drains N jobs (min(N, B) of a pending backlog); record the rate."""
    n = ctx.config.n
    async with ctx.queue(case.db) as queue:
        if case.completed:
            added = case.ids.take(n)
            await fill(queue, added, ctx.config.fill_chunk)
            case.required.append(added)
        elif round_number:
            await _top_up_open(ctx, queue, case)
    measured = n if case.completed else min(n, case.size)
    target = len(case.counted) + measured
    outcome = await run_workers(
        ctx,
        case.db,
        case.log,
        case.reader,
        name=f"-{case.name}-r{round_number}",
        until=lambda: len(case.reader.first_start) >= target,
    )
    record_outcome(result, outcome, case.reader)
    new = {
        job: started for job, started in case.reader.first_start.items() if job not in case.counted
    }
    case.counted.update(new)
    rate = throughput(sorted(new.values())[:measured])
    if rate is not None:
        case.record("process", rate)


async def _top_up(ctx: PhaseContext, case: _Case) -> None:
    """Back to B pending (a pending case): the jobs drained, and any more that ran."""
    if not case.completed:
        async with ctx.queue(case.db) as queue:
            await _top_up_open(ctx, queue, case)


async def _top_up_open(ctx: PhaseContext, queue: JobQueue, case: _Case) -> None:
    pending = case.ids.next - case.jobs_run()
    await fill(queue, case.ids.take(case.size - pending), ctx.config.fill_chunk)


async def _enqueue_round(ctx: PhaseContext, case: _Case, count: int) -> None:
    """``count`` sequential, then ``count`` concurrent enqueues on top of the backlog."""
    async with ctx.queue(case.db) as queue:
        seq_rate, seq_ids = await enqueue_sequential(queue, case.ids.take(count))
        conc_rate, conc_ids = await enqueue_concurrent(
            queue, case.ids.take(count), ctx.config.producers
        )
    case.record("enqueue_seq", seq_rate)
    case.record("enqueue_conc", conc_rate)
    case.enqueued += seq_ids + conc_ids


def _add_figures(
    result: PhaseResult, case: _Case, base: _Case | None, measure: str, label: str
) -> None:
    """The median rate, its spread, and the median ratio to the base case's same round."""
    rates = case.rates.get(measure)
    if not rates:
        return
    key = f"{measure}_{case.key}"
    result.add(f"{key}_jobs_s", f"{label} jobs/s, {case.label}", statistics.median(rates))
    result.add(f"{key}_min_jobs_s", f"{label} min, {case.label}", min(rates), detail=True)
    result.add(f"{key}_max_jobs_s", f"{label} max, {case.label}", max(rates), detail=True)
    base_rates = base.rates.get(measure, []) if base is not None else []
    if base is None or base is case or len(base_rates) != len(rates):
        return
    ratios = [mine / theirs * 100 for mine, theirs in zip(rates, base_rates, strict=True)]
    result.add(
        f"{key}_vs_small_pct",
        f"{label} {case.label} vs {base.label}, % (median of {len(ratios)})",
        statistics.median(ratios),
    )


async def _complete(ctx: PhaseContext, queue: JobQueue, size: int) -> float:
    """Run the whole backlog in this process, so its rows are kept as completed."""
    started = time.perf_counter()
    ran = await NoopWorker(queue, concurrency=ctx.config.fill_concurrency).run_until_idle()
    if ran != size:
        raise FillError(f"completing the backlog ran {ran} of {size} jobs")
    return time.perf_counter() - started


def depth_label(size: int, completed: bool) -> str:
    """``"1M pending"``, ``"10k completed"``, ..."""
    if size >= 1_000_000 and size % 1_000_000 == 0:
        short = f"{size // 1_000_000}M"
    elif size >= 1_000 and size % 1_000 == 0:
        short = f"{size // 1_000}k"
    else:
        short = f"{size:,}"
    return f"{short} {'completed' if completed else 'pending'}"
