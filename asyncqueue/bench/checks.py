"""Correctness checks shared by the phases: exactly-once delivery and the queue's own counts."""

from __future__ import annotations

from collections.abc import Sequence

from asyncqueue import JobId, QueueStats
from asyncqueue.bench.joblog import Delivery
from asyncqueue.bench.result import PhaseResult


def check_delivery(result: PhaseResult, delivery: Delivery) -> None:
    """Every required job ran exactly once, per the job log."""
    result.check("exactly_once", delivery.exactly_once, delivery.describe())


def check_enqueued(result: PhaseResult, ids: Sequence[JobId], expected: int) -> None:
    """Each enqueue created its own job: ``expected`` distinct ids, all new."""
    created = sum(1 for job_id in ids if job_id.created)
    distinct = len({int(job_id) for job_id in ids})
    ok = len(ids) == expected and created == expected and distinct == expected
    detail = f"{len(ids)} ids returned, {created} created, {distinct} distinct of {expected}"
    result.check("exactly_once", ok, detail)


def check_stats(result: PhaseResult, stats: QueueStats, **expected: int) -> None:
    """``get_queue_stats()`` agrees with what the phase did (counts given by field name)."""
    wrong = [
        f"{name}={getattr(stats, name)} (expected {value})"
        for name, value in expected.items()
        if getattr(stats, name) != value
    ]
    result.check("queue_stats", not wrong, ", ".join(wrong) or _counts(stats))


def check_drained(result: PhaseResult, stats: QueueStats, total: int, completed: int) -> None:
    """The queue holds ``total`` jobs of which ``completed`` completed, the rest pending."""
    check_stats(
        result,
        stats,
        total_jobs=total,
        completed_jobs=completed,
        pending_jobs=total - completed,
        processing_jobs=0,
        retry_scheduled_jobs=0,
        failed_jobs=0,
        active_workers=0,
    )


def _counts(stats: QueueStats) -> str:
    return ", ".join(f"{name}={value}" for name, value in stats.to_dict().items() if value)
