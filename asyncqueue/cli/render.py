"""Plain-text output of the command line: aligned tables, times, durations, sizes, JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click

#: What a table shows for a missing value.
NONE = "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows under headers in aligned columns; numbers right-aligned, the rest left-aligned.

    A header that starts with ``>`` is right-aligned (the ``>`` is not shown); columns of
    numbers are right-aligned on their own.
    """
    names = [header.removeprefix(">") for header in headers]
    cells = [[cell_text(value) for value in row] for row in rows]
    right = [
        header.startswith(">") or _numeric_column([row[i] for row in rows])
        for i, header in enumerate(headers)
    ]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(names)]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if align_right else value.ljust(width)
            for value, width, align_right in zip(values, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(names), *(line(row) for row in cells)])


def _numeric_column(values: Sequence[Any]) -> bool:
    numbers = [v for v in values if v is not None]
    return bool(numbers) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in numbers
    )


def cell_text(value: Any) -> str:
    """One table cell: None as ``-``, datetimes in UTC, floats shortened."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def when(moment: datetime | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    if moment is None:
        return NONE
    # Not strftime: its %Y drops the zero padding of years before 1000 on some platforms.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "seconds")


def duration(seconds: float | None) -> str:
    """Seconds for a person: ``850ms``, ``4.2s``, ``3m 05s``, ``2h 03m``, ``1d 02h``."""
    if seconds is None:
        return NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.001 else f"{seconds * 1000:.2f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def size(num_bytes: int) -> str:
    """A byte count as ``512 B``, ``12.3 KiB``, ``4.0 MiB``, ``1.2 GiB``."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def percent(fraction: float | None) -> str:
    """A fraction as a percentage with one decimal."""
    return NONE if fraction is None else f"{fraction * 100:.1f}%"


def shorten(text: str | None, width: int = 60) -> str | None:
    """The first line of ``text``, cut to ``width`` characters with an ellipsis."""
    if text is None:
        return None
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def plural(count: int, noun: str) -> str:
    """``1 job``, ``2 jobs``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def echo_json(document: Any, *, compact: bool = False) -> None:
    """Print a JSON document on stdout (one line when ``compact``)."""
    if compact:
        click.echo(json.dumps(document, separators=(",", ":")))
    else:
        click.echo(json.dumps(document, indent=2))
