"""The throughput chart as server-rendered SVG: no script, nothing for the CSP to allow.

Colours come from classes the stylesheet sets (light and dark), never from style
attributes, which the Content-Security-Policy forbids.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from asyncqueue.metrics import ThroughputBucket

WIDTH = 720
HEIGHT = 200
_LEFT = 48
_RIGHT = 44
_TOP = 12
_BOTTOM = 28


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def throughput_svg(buckets: Sequence[ThroughputBucket], bucket_seconds: float) -> Markup:
    """Completed and failed jobs per bucket as stacked bars, the failure rate as a line.

    Args:
        buckets: the series, oldest first (``JobQueue.get_throughput``).
        bucket_seconds: each bucket's length, for the caption.
    """
    if not buckets:
        return Markup("")
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    top = _nice_ceiling(max((b.completed + b.failed for b in buckets), default=0))
    slot = plot_w / len(buckets)
    bar_w = max(slot - 2, 1)

    def y(value: float, scale: float) -> float:
        return _TOP + plot_h - plot_h * value / scale

    parts: list[str] = []
    for fraction in (0.0, 0.5, 1.0):
        gy = y(top * fraction, top)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}"/>'
            f'<text class="axis" x="{_LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{round(top * fraction):,}</text>"
            f'<text class="axis" x="{WIDTH - _RIGHT + 6}" y="{gy + 4:.1f}">'
            f"{round(100 * fraction)}%</text>"
        )
    points: list[str] = []
    for i, bucket in enumerate(buckets):
        x = _LEFT + i * slot + 1
        total = bucket.completed + bucket.failed
        label = escape(
            f"{bucket.start:%H:%M} UTC: {bucket.completed:,} completed, {bucket.failed:,} failed"
        )
        parts.append(f"<g><title>{label}</title>")
        if bucket.completed:
            parts.append(_bar("completed", x, y(total, top), bar_w, y(bucket.failed, top)))
        if bucket.failed:
            parts.append(_bar("failed", x, y(bucket.failed, top), bar_w, y(0, top)))
        parts.append("</g>")
        rate = bucket.failure_rate
        if rate is not None:
            points.append(f"{x + bar_w / 2:.1f},{y(rate, 1.0):.1f}")
    if len(points) > 1:
        parts.append(f'<polyline class="rate" points="{" ".join(points)}"/>')
    elif points:
        cx, cy = points[0].split(",")
        parts.append(f'<circle class="rate-dot" cx="{cx}" cy="{cy}" r="3"/>')
    first, last = buckets[0].start, buckets[-1].start
    parts.append(
        f'<text class="axis" x="{_LEFT}" y="{HEIGHT - 8}">{first:%H:%M}</text>'
        f'<text class="axis" x="{WIDTH - _RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{last:%H:%M} UTC</text>"
    )
    completed = sum(b.completed for b in buckets)
    failed = sum(b.failed for b in buckets)
    minutes = len(buckets) * bucket_seconds / 60
    description = escape(
        f"Over the last {minutes:.0f} minutes: {completed:,} jobs completed and {failed:,} "
        f"failed, in bars of {bucket_seconds:.0f} seconds; the line is the failure rate."
    )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title chart-desc">'
        f'<title id="chart-title">Throughput and failure rate</title>'
        f'<desc id="chart-desc">{description}</desc>{"".join(parts)}</svg>'
    )


def _bar(kind: str, x: float, top: float, width: float, bottom: float) -> str:
    height = max(bottom - top, 0.5)
    return (
        f'<rect class="{kind}" x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" '
        f'height="{height:.1f}"/>'
    )
