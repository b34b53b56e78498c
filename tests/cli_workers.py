"""Worker classes for the ``asyncqueue worker`` tests (imported by the CLI as ``cli_workers``).

The tests put this directory on ``PYTHONPATH`` and run
``python -m asyncqueue worker cli_workers:GatedWorker``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from asyncqueue import JobResult, QueueWorker


class GatedWorker(QueueWorker):
    """Each job creates ``<markers>/<target_id>.started``, waits for ``<target_id>.go``.

    ``markers`` comes from the job's metadata. Without the gate file the job waits forever,
    so a test decides when (and whether) it finishes.
    """

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        markers = Path(metadata["markers"])
        (markers / f"{target_id}.started").touch()
        gate = markers / f"{target_id}.go"
        while not gate.exists():
            await asyncio.sleep(0.01)
        return True


class QuickWorker(QueueWorker):
    """Jobs sleep ``metadata["seconds"]`` (default 0) and succeed; type ``fail`` fails."""

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        await asyncio.sleep(float(metadata.get("seconds", 0)))
        if job_type == "fail":
            raise ValueError(f"{target_id} failed on purpose")
        return True


class NotAWorker:
    """A class that is not a QueueWorker."""


def not_a_class() -> None:
    """A function, not a class."""


class LoggingWorker(QueueWorker):
    """Sleeps ``metadata["seconds"]``, appends the target to ``metadata["log"]``, keeps a result.

    One short line per job, written with O_APPEND: lines of concurrent processes never mix,
    so the log counts how often each job ran.
    """

    async def process_job(
        self, job_type: str, target_id: str, metadata: dict[str, Any]
    ) -> bool | JobResult:
        await asyncio.sleep(float(metadata.get("seconds", 0)))
        with open(metadata["log"], "a") as log:
            log.write(f"{target_id}\n")
        return JobResult({"worker": self.worker_id})
