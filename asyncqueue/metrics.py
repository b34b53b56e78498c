"""Queue metrics: throughput, outcome rates, processing-time percentiles, backlog. Pure.

A storage backend reads a :class:`MetricsRows` snapshot (in one read transaction, so the
figures agree); :func:`build_metrics` turns it into the :class:`QueueMetrics` that
``JobQueue.get_metrics`` returns. Nothing here depends on the job history table, so the
figures are the same whether history is recorded or not.

Definitions (``now`` is the queue clock's time, ``window`` the requested seconds):

- A job *completed* or *failed* in a period when its ``completed_at`` is at or after the
  period's start. Cancelled jobs are neither.
- *Processing time* is ``completed_at - started_at`` of a completed job: from the claim of
  its last attempt to the recording of its success, as the queue's clock saw them (a job a
  worker claimed ahead also counts the moments it waited in that worker).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncqueue.errors import ValidationError, ValidationTypeError
from asyncqueue.timebounds import MAX_SPAN_SECONDS, clamped, clamped_seconds, stored_datetime

#: Window of ``JobQueue.get_metrics`` when none is given, in seconds. Its cost grows with the
#: jobs completed in it (see ``asyncqueue.storage.sqlite_metrics``).
DEFAULT_WINDOW_SECONDS = 300.0
#: The three percentiles reported per job type.
PERCENTILES: tuple[float, float, float] = (50.0, 95.0, 99.0)


def check_window(window: object) -> float:
    """Validate a metrics window for ``JobQueue.get_metrics``.

    Args:
        window: seconds, a positive finite int or float (not a bool).

    Returns:
        The window as a float. A window longer than the span of storable times (0001 to
        9999) covers every job whatever its length, and is shortened to that span.

    Raises:
        ValidationTypeError: ``window`` is not a number.
        ValidationError: ``window`` is not positive and finite.
    """
    if isinstance(window, bool) or not isinstance(window, int | float):
        raise ValidationTypeError(f"window must be a number of seconds, got {window!r}")
    if not 0 < window < math.inf:
        raise ValidationError(f"window must be > 0 seconds, got {window!r}")
    # Compared before converting: an int too large for a float still works.
    return float(min(window, MAX_SPAN_SECONDS))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ascending values, by linear interpolation.

    The method is the one NumPy and ``statistics.quantiles(method="inclusive")`` use by
    default: the value at rank ``(n - 1) * q / 100``, interpolating between the two
    neighbouring values when that rank is fractional. So ``q=0`` is the minimum, ``q=100``
    the maximum, and one value is every percentile of itself.

    Args:
        sorted_values: the samples, already sorted ascending (not checked).
        q: the percentile, from 0 to 100.

    Returns:
        The percentile.

    Raises:
        ValueError: ``sorted_values`` is empty, or ``q`` is outside [0, 100].
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be between 0 and 100, got {q!r}")
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


@dataclass(frozen=True, slots=True)
class MetricsRows:
    """The raw figures a backend reads for :func:`build_metrics`, all from one snapshot.

    Attributes:
        now: the time the figures are for (UTC epoch seconds).
        window: the window's length in seconds.
        completed_last_minute: jobs completed in the 60 s before ``now``.
        completed_last_hour: jobs completed in the 3600 s before ``now``.
        completed_by_type: jobs completed in the window, by job type.
        failed_by_type: jobs that ended failed in the window, by job type.
        mean_processing_by_type: mean processing time of every job completed in the window,
            by job type.
        durations_by_type: processing times of the most recent completions in the window
            (at most a backend-defined number per type), by job type, in any order.
        retried_in_window: jobs now waiting for a retry whose failed attempt ended in the
            window.
        oldest_due_run_at: the earliest ``run_at`` among pending or retry-scheduled jobs
            that are due, or None.
        depth: ``(job_type, status, count)`` for every job in the table.
    """

    now: float
    window: float
    completed_last_minute: int
    completed_last_hour: int
    completed_by_type: Mapping[str, int]
    failed_by_type: Mapping[str, int]
    mean_processing_by_type: Mapping[str, float]
    durations_by_type: Mapping[str, Sequence[float]]
    retried_in_window: int
    oldest_due_run_at: float | None
    depth: Sequence[tuple[str, str, int]]


@dataclass(frozen=True, slots=True)
class JobTypeMetrics:
    """Outcomes and processing times of one job type within the metrics window.

    Attributes:
        job_type: the job type.
        completed: jobs of this type completed in the window.
        failed: jobs of this type that ended failed (retries spent) in the window.
        samples: how many processing times the percentiles were computed from: the most
            recent completions in the window, capped per type by the backend (10,000 for
            SQLite).
        processing_p50: median processing time in seconds, None without samples.
        processing_p95: 95th percentile processing time in seconds, None without samples.
        processing_p99: 99th percentile processing time in seconds, None without samples.
        processing_mean: mean processing time in seconds over every completion in the
            window (not only the samples), None if none completed.
    """

    job_type: str
    completed: int
    failed: int
    samples: int
    processing_p50: float | None
    processing_p95: float | None
    processing_p99: float | None
    processing_mean: float | None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return {
            "job_type": self.job_type,
            "completed": self.completed,
            "failed": self.failed,
            "samples": self.samples,
            "processing_p50": self.processing_p50,
            "processing_p95": self.processing_p95,
            "processing_p99": self.processing_p99,
            "processing_mean": self.processing_mean,
        }


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """How the queue is doing: what ``JobQueue.get_metrics(window=...)`` returns.

    Attributes:
        window_seconds: the window the ``*_in_window`` figures and ``by_type`` cover.
        generated_at: when the figures were read, by the queue's clock (UTC).
        completed_last_minute: jobs completed in the last 60 seconds.
        completed_last_hour: jobs completed in the last 3600 seconds.
        completed_in_window: jobs completed in the window.
        failed_in_window: jobs that ended failed (retries spent) in the window.
        retried_in_window: jobs waiting for a retry now whose failed attempt ended in the
            window. An approximation of "failed attempts in the window": it does not see
            attempts whose job has since been claimed again, completed or failed, nor jobs
            recovered from an expired lease (those go back to pending).
        success_rate: ``completed / (completed + failed)`` in the window; None when no job
            completed or failed in it. Cancelled jobs do not count.
        failure_rate: ``failed / (completed + failed)`` in the window; None likewise.
        oldest_pending_age_seconds: how long the longest-waiting due job (pending or
            retry-scheduled) has been due, measured from its ``run_at``; None if no job is
            due. Delayed jobs whose time has not come do not count.
        depth: job counts by job type, then by status, for every job in the table.
        by_type: per job type metrics for every job type in the table (or that finished
            in the window), sorted by name.
    """

    window_seconds: float
    generated_at: datetime
    completed_last_minute: int
    completed_last_hour: int
    completed_in_window: int
    failed_in_window: int
    retried_in_window: int
    success_rate: float | None
    failure_rate: float | None
    oldest_pending_age_seconds: float | None
    depth: dict[str, dict[str, int]]
    by_type: dict[str, JobTypeMetrics]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``generated_at`` as an ISO 8601 string, ``by_type`` as dicts."""
        return {
            "window_seconds": self.window_seconds,
            "generated_at": self.generated_at.isoformat(),
            "completed_last_minute": self.completed_last_minute,
            "completed_last_hour": self.completed_last_hour,
            "completed_in_window": self.completed_in_window,
            "failed_in_window": self.failed_in_window,
            "retried_in_window": self.retried_in_window,
            "success_rate": self.success_rate,
            "failure_rate": self.failure_rate,
            "oldest_pending_age_seconds": self.oldest_pending_age_seconds,
            "depth": {job_type: dict(counts) for job_type, counts in self.depth.items()},
            "by_type": {job_type: m.to_dict() for job_type, m in self.by_type.items()},
        }


def build_metrics(rows: MetricsRows) -> QueueMetrics:
    """Turn a backend's raw snapshot into :class:`QueueMetrics`.

    Args:
        rows: the figures read in one snapshot.

    Returns:
        The metrics.
    """
    completed = sum(rows.completed_by_type.values())
    failed = sum(rows.failed_by_type.values())
    finished = completed + failed
    depth = _depth(rows.depth)
    job_types = sorted(set(depth) | set(rows.completed_by_type) | set(rows.failed_by_type))
    return QueueMetrics(
        window_seconds=rows.window,
        generated_at=stored_datetime(rows.now),
        completed_last_minute=rows.completed_last_minute,
        completed_last_hour=rows.completed_last_hour,
        completed_in_window=completed,
        failed_in_window=failed,
        retried_in_window=rows.retried_in_window,
        success_rate=completed / finished if finished else None,
        failure_rate=failed / finished if finished else None,
        oldest_pending_age_seconds=_age(rows.now, rows.oldest_due_run_at),
        depth=depth,
        by_type={job_type: _type_metrics(job_type, rows) for job_type in job_types},
    )


def _depth(depth_rows: Sequence[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    depth: dict[str, dict[str, int]] = {}
    for job_type, status, count in sorted(depth_rows):
        depth.setdefault(job_type, {})[status] = count
    return depth


def _age(now: float, since: float | None) -> float | None:
    # Never negative, even if a clock stepped back after the job became due. A run time
    # stored out of range (by hand) counts as clamped, as reading the job shows it.
    return None if since is None else max(0.0, now - clamped(since))


def _type_metrics(job_type: str, rows: MetricsRows) -> JobTypeMetrics:
    # Durations from times stored out of range (by hand) could be infinite or not numbers.
    durations = sorted(map(clamped_seconds, rows.durations_by_type.get(job_type, ())))
    mean = rows.mean_processing_by_type.get(job_type)
    p50, p95, p99 = (percentile(durations, q) if durations else None for q in PERCENTILES)
    return JobTypeMetrics(
        job_type=job_type,
        completed=rows.completed_by_type.get(job_type, 0),
        failed=rows.failed_by_type.get(job_type, 0),
        samples=len(durations),
        processing_p50=p50,
        processing_p95=p95,
        processing_p99=p99,
        processing_mean=None if mean is None else clamped_seconds(mean),
    )


@dataclass(frozen=True, slots=True)
class ThroughputBucket:
    """Jobs that ended in one time bucket (``JobQueue.get_throughput``).

    Attributes:
        start: the bucket's start (UTC); it lasts the bucket length asked for.
        completed: jobs completed in it.
        failed: jobs that ended failed (retries spent) in it.
    """

    start: datetime
    completed: int
    failed: int

    @property
    def failure_rate(self) -> float | None:
        """``failed / (completed + failed)``, None when no job ended in the bucket."""
        ended = self.completed + self.failed
        return self.failed / ended if ended else None
