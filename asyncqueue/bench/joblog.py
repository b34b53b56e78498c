"""The job log: every benchmark job appends ``"<target_id> <time.time()>"`` to one file.

Workers write with one ``os.write`` on an ``O_APPEND`` descriptor (atomic for such short
lines, also across processes); the parent reads the file incrementally to count runs
(exactly-once) and to take job start times (throughput, latency) as the peer bench does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path


class JobLogWriter:
    """The worker side: records that a job started."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, target_id: str) -> None:
        """Append ``target_id`` and the current wall-clock time."""
        os.write(self._fd, b"%s %.6f\n" % (target_id.encode(), time.time()))

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How the jobs logged compare with the jobs expected."""

    required: int
    ran: int
    duplicated: int
    extra_runs: int
    missing: int
    unexpected: int
    malformed: int

    @property
    def exactly_once(self) -> bool:
        """Every required job ran, none twice, nothing unknown ran."""
        return not (self.duplicated or self.missing or self.unexpected or self.malformed)

    def describe(self) -> str:
        """A one-line account, e.g. ``"10000 ran, 3 twice, 0 missing"``."""
        text = f"{self.ran} ran of {self.required} required"
        for name in ("duplicated", "missing", "unexpected", "malformed"):
            value = getattr(self, name)
            if value:
                text += f", {value} {name}"
        return text


class JobLogReader:
    """The parent side: parses what workers appended since the last poll."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.runs: dict[int, int] = {}
        self.first_start: dict[int, float] = {}
        self.malformed = 0

    def poll(self) -> int:
        """Read new lines; return how many distinct jobs have started so far."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return len(self.first_start)
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._parse(line)
        return len(self.first_start)

    def _parse(self, line: bytes) -> None:
        try:
            raw_id, raw_time = line.split()
            job, started = int(raw_id), float(raw_time)
        except ValueError:
            self.malformed += 1
            return
        self.runs[job] = self.runs.get(job, 0) + 1
        self.first_start.setdefault(job, started)

    def start_times(self) -> list[float]:
        """First start time of every job seen, sorted."""
        return sorted(self.first_start.values())

    def delivery(self, required: Collection[int], allowed: range | None = None) -> Delivery:
        """Compare with ``required`` (must each run once) and ``allowed`` (may run once)."""
        duplicates = {job: count for job, count in self.runs.items() if count > 1}
        unexpected = sum(
            1
            for job in self.runs
            if job not in required and (allowed is None or job not in allowed)
        )
        return Delivery(
            required=len(required),
            ran=len(self.runs),
            duplicated=len(duplicates),
            extra_runs=sum(count - 1 for count in duplicates.values()),
            missing=sum(1 for job in required if job not in self.runs),
            unexpected=unexpected,
            malformed=self.malformed + (1 if self._partial else 0),
        )
