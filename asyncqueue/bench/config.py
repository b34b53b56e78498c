"""The benchmark's settings: which phases, how many jobs, which durability."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

Sync = Literal["NORMAL", "FULL"]


class SchemaUrl(str):
    """A PostgreSQL URL that also names the schema a phase's queue lives in."""

    schema: str

    def __new__(cls, url: str, schema: str) -> Self:
        """``url``, carrying ``schema``."""
        self = super().__new__(cls, url)
        self.schema = schema
        return self


#: Where a phase's queue lives: a SQLite file, or (``--db``) a schema at a PostgreSQL URL.
DbLocation = Path | SchemaUrl

#: Every phase, in the order they run.
PHASES: tuple[str, ...] = (
    "enqueue-sequential",
    "enqueue-concurrent",
    "enqueue-many",
    "process-1",
    "process-2",
    "latency-same-process",
    "latency-cross-process",
    "idle-cpu",
    "depth",
    "memory",
)
#: Phases through ``asyncqueue serve`` (needs the ``server`` extra), run with ``--remote``.
REMOTE_PHASES: tuple[str, ...] = ("remote-1", "remote-4", "remote-8", "latency-remote")
#: Every phase there is; the remote ones run only when asked for.
ALL_PHASES: tuple[str, ...] = PHASES + REMOTE_PHASES
SYNC_MODES: tuple[Sync, ...] = ("NORMAL", "FULL")

#: Depth cases: a backlog of ``small`` or ``big`` jobs, left pending or completed first.
DEPTH_CASES: tuple[str, ...] = (
    "small-pending",
    "big-pending",
    "small-completed",
    "big-completed",
)
DEFAULT_DEPTH_CASES: tuple[str, ...] = ("small-pending", "big-pending", "big-completed")
QUICK_DEPTH_CASES: tuple[str, ...] = ("small-pending", "small-completed")

#: Jobs a worker drains in the memory phase (``--quick`` drains ``2 * n`` at most).
MEMORY_JOBS = 100_000


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Everything a run needs to know; built by the CLI, printed with the results."""

    directory: Path
    n: int = 10_000
    concurrency: int = 10
    syncs: tuple[Sync, ...] = SYNC_MODES
    phases: tuple[str, ...] = PHASES
    quick: bool = False
    json_path: Path | None = None
    producers: int = 50
    chunk: int = 1_000
    fill_chunk: int = 50_000
    latency_jobs: int = 200
    latency_interval: float = 0.010
    latency_idle: float = 1.0
    idle_seconds: float = 2.0
    memory_jobs: int = MEMORY_JOBS
    depth_small: int = 10_000
    depth_big: int = 1_000_000
    depth_cases: tuple[str, ...] = DEFAULT_DEPTH_CASES
    depth_rounds: int = 3
    fill_concurrency: int = 200
    poll_interval: float | None = None
    stall_timeout: float = 60.0
    keep_files: bool = False
    #: A PostgreSQL URL: each phase gets a fresh schema of its own there (else SQLite files).
    db_url: str | None = None

    def describe(self) -> dict[str, object]:
        """The settings as a JSON-ready dict (for the header and ``--json``)."""
        return {
            "n": self.n,
            "concurrency": self.concurrency,
            "synchronous": list(self.syncs),
            "phases": list(self.phases),
            "quick": self.quick,
            "directory": str(self.directory),
            "producers": self.producers,
            "enqueue_many_chunk": self.chunk,
            "latency_jobs": self.latency_jobs,
            "latency_interval_s": self.latency_interval,
            "idle_cpu_seconds": self.idle_seconds,
            "memory_jobs": self.memory_jobs,
            "depth_small": self.depth_small,
            "depth_big": self.depth_big,
            "depth_cases": list(self.depth_cases),
            "depth_rounds": self.depth_rounds,
            "backend": "postgres" if self.db_url else "sqlite",
            "poll_interval": "library default"
            if self.poll_interval is None
            else self.poll_interval,
        }

    def depth_size(self, case: str) -> int:
        """The backlog size of a depth case such as ``"big-pending"``."""
        return self.depth_big if case.startswith("big") else self.depth_small
