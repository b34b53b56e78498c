"""What the library logs during the benchmark: warnings and errors, as JSON lines, counted.

asyncqueue logs through structlog and honours an application's configuration; the benchmark
is such an application. It keeps warnings and errors (one JSON object a line) out of the
table and in a file per process, and counts them per phase so a library that misbehaves
while still passing the checks (lost leases, failed writes) shows in the report.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog


class EventCounter:
    """A structlog processor that counts events by ``"<level> <event>"``."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        self._counts[f"{event_dict.get('level', method_name)} {event_dict.get('event')}"] += 1
        return event_dict

    def take(self) -> Counter[str]:
        """The counts since the last call."""
        counts, self._counts = self._counts, Counter()
        return counts


def configure_library_logging(stream: TextIO, counter: EventCounter | None = None) -> None:
    """Send the library's warnings and errors to ``stream`` as JSON lines."""
    processors: list[Any] = [structlog.processors.add_log_level]
    if counter is not None:
        processors.append(counter)
    processors += [
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def count_logged_events(paths: Iterable[Path]) -> Counter[str]:
    """Count the events in worker processes' output; other lines count as ``"other output"``."""
    counts: Counter[str] = Counter()
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            counts[_event_name(line)] += 1
    return counts


def _event_name(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return "other output"
    if not isinstance(entry, dict):
        return "other output"
    return f"{entry.get('level', '?')} {entry.get('event', '?')}"
