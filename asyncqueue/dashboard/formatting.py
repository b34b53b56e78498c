"""Template filters: times, ages, durations, numbers and JSON as people read them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape


def timestamp(value: datetime | None) -> Markup:
    """A UTC time in a ``<time>`` element (its ISO form in ``datetime``), or a dash."""
    if value is None:
        return Markup('<span class="muted">—</span>')
    iso = value.astimezone(UTC).isoformat()
    shown = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup(f'<time datetime="{escape(iso)}">{escape(shown)}</time>')


def seconds(value: float | None) -> str:
    """A length of time: ``850 ms``, ``12.3 s``, ``4 min 5 s``, ``3 h 2 min``, ``2 d 4 h``."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.001 else f"{value * 1e6:.0f} µs"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``value`` was: ``3.0 s ago``."""
    if value is None:
        return "—"
    elapsed = ((now or datetime.now(UTC)) - value).total_seconds()
    return f"{seconds(max(elapsed, 0.0))} ago"


def number(value: int | None) -> str:
    """An integer with thousands separators."""
    return "—" if value is None else f"{value:,}"


def percent(value: float | None) -> str:
    """A rate as a percentage."""
    return "—" if value is None else f"{value * 100:.1f}%"


def pretty_json(value: Any) -> str:
    """JSON, indented and with keys sorted."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def first_line(value: str | None, length: int = 160) -> str:
    """The first line of a message, cut to ``length`` characters."""
    if not value:
        return ""
    line = value.strip().splitlines()[0] if value.strip() else ""
    return line if len(line) <= length else line[: length - 1] + "…"


def key(value: str) -> str:
    """A short stable key for a value, for element ids that must survive a live refresh."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


FILTERS: dict[str, Callable[..., Any]] = {
    "key": key,
    "timestamp": timestamp,
    "seconds": seconds,
    "age": age,
    "number": number,
    "percent": percent,
    "pretty_json": pretty_json,
    "first_line": first_line,
}
