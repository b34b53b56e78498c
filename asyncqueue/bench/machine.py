"""The machine and software a run was measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import asyncqueue


@dataclass(frozen=True, slots=True)
class Machine:
    """Where a run was measured."""

    cpu_count: int | None
    cpu_model: str
    ram_gib: float | None
    os: str
    python: str
    sqlite: str
    aiosqlite: str
    asyncqueue: str
    load_average: tuple[float, float, float] | None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def machine_info() -> Machine:
    """CPU, memory, OS, and the versions of Python, SQLite, aiosqlite and asyncqueue."""
    return Machine(
        cpu_count=os.cpu_count(),
        cpu_model=_cpu_model(),
        ram_gib=_ram_gib(),
        os=platform.platform(),
        python=platform.python_version(),
        sqlite=sqlite3.sqlite_version,
        aiosqlite=_version("aiosqlite"),
        asyncqueue=asyncqueue.__version__,
        load_average=_load_average(),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _load_average() -> tuple[float, float, float] | None:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return None
    return round(one, 2), round(five, 2), round(fifteen, 2)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
