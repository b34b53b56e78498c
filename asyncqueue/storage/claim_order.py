"""The claim orders every backend uses, as SQL, so a queue picks the same jobs on each.

``priority``: 1 before 10, then the job due longest (``run_at``), then id. ``fifo``: due
longest first, any priority. ``lifo``: due most recently first. Each reads the partial index
``jobs_ready_by_priority (priority, run_at, id)`` of ready jobs.
"""

from __future__ import annotations

from asyncqueue.storage.base import Strategy
from asyncqueue.validation import MAX_PRIORITY, MIN_PRIORITY

PRIORITIES = range(MIN_PRIORITY, MAX_PRIORITY + 1)

#: strategy -> the ORDER BY of its claim
ORDER: dict[Strategy, str] = {
    "priority": "priority, run_at, id",
    "fifo": "run_at, id",
    "lifo": "run_at DESC, id DESC",
}


def per_priority_ranges(due: str, order: str, lock: str = "") -> list[str]:
    """One ``SELECT id, run_at`` per priority: the first ``:limit`` rows of ``due`` (a FROM
    and WHERE ending in the due condition) at that priority, in ``order``, locked with
    ``lock`` if given. Each is one range of the ready index, ending at the first job not
    yet due."""
    suffix = f" {lock}" if lock else ""
    return [
        f"SELECT id, run_at FROM (SELECT id, run_at {due} AND priority = {p} "
        f"ORDER BY {order} LIMIT :limit{suffix}) AS p{p}"
        for p in PRIORITIES
    ]


def merged_ranges(due: str, strategy: Strategy, lock: str = "") -> str:
    """The ids of the first ``:limit`` due jobs in ``strategy``'s order, merged from the
    per-priority ranges (for fifo/lifo, whose order crosses priorities)."""
    order = ORDER[strategy]
    arms = " UNION ALL ".join(per_priority_ranges(due, order, lock))
    return f"SELECT id FROM ({arms}) AS arms ORDER BY {order} LIMIT :limit"


def earliest_ready(ready: str) -> str:
    """The earliest ``run_at`` among the rows of ``ready`` (a FROM and WHERE over ready
    jobs), or NULL: the first entry of each priority's range of the ready index, so the
    answer costs ten index probes however many jobs wait (with a job-type filter, each
    range is read up to its first job of those types)."""
    arms = " UNION ALL ".join(
        f"SELECT run_at FROM (SELECT run_at {ready} AND priority = {p} "
        f"ORDER BY run_at LIMIT 1) AS p{p}"
        for p in PRIORITIES
    )
    return f"SELECT min(run_at) FROM ({arms}) AS firsts"
