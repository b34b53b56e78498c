"""Template filters: times, ages, durations, numbers and JSON as people read them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

from asyncqueue.cli.render import duration, when
from asyncqueue.cli.render import percent as cli_percent

#: What an absent value shows as.
NONE = "—"


def timestamp(value: datetime | None) -> Markup:
    """A UTC time in a ``<time>`` element (its ISO form in ``datetime``), or a dash."""
    if value is None:
        return Markup(f'<span class="muted">{NONE}</span>')
    iso = value.astimezone(UTC).isoformat()
    return Markup(f'<time datetime="{escape(iso)}">{escape(when(value))} UTC</time>')


def seconds(value: float | None) -> str:
    """A length of time, as the CLI shows it: ``850ms``, ``12.3s``, ``4m 05s``, ``3h 02m``."""
    return NONE if value is None else duration(value)


def age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``value`` was: ``3.0 s ago``."""
    if value is None:
        return NONE
    elapsed = ((now or datetime.now(UTC)) - value).total_seconds()
    return f"{seconds(max(elapsed, 0.0))} ago"


def number(value: int | None) -> str:
    """An integer with thousands separators."""
    return NONE if value is None else f"{value:,}"


def percent(value: float | None) -> str:
    """A rate as a percentage, as the CLI shows it."""
    return NONE if value is None else cli_percent(value)


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
