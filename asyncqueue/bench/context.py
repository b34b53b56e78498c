"""What a phase gets to work with: settings, fresh files, queues and worker processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asyncqueue import JobQueue, QueueStats
from asyncqueue.bench.config import BenchConfig, Sync
from asyncqueue.bench.joblog import JobLogReader, JobLogWriter
from asyncqueue.bench.procs import WorkerProcess, spawn_worker
from asyncqueue.bench.recorder import RecordingWorker

_DB_SUFFIXES = ("", "-wal", "-shm", "-journal")


@dataclass(slots=True)
class PhaseContext:
    """One phase at one durability setting; hands out fresh files named after both."""

    config: BenchConfig
    sync: Sync
    phase: str
    _databases: list[Path] = field(default_factory=list)
    worker_outputs: list[Path] = field(default_factory=list)

    def _path(self, name: str, suffix: str) -> Path:
        return self.config.directory / f"{self.phase}-{self.sync.lower()}{name}{suffix}"

    def database(self, name: str = "") -> Path:
        """A database file that does not exist yet."""
        path = self._path(name, ".db")
        _remove_database(path)
        self._databases.append(path)
        return path

    def job_log(self, name: str = "") -> tuple[Path, JobLogReader]:
        """An empty job log and a reader for it."""
        path = self._path(name, ".log")
        path.unlink(missing_ok=True)
        return path, JobLogReader(path)

    def queue(self, db: Path) -> JobQueue:
        """A :class:`JobQueue` on ``db`` with this phase's durability."""
        return JobQueue(db, synchronous=self.sync)

    def recording_worker(
        self, queue: JobQueue, joblog: JobLogWriter, concurrency: int | None = None
    ) -> RecordingWorker:
        """An in-process worker with the configured concurrency and poll interval."""
        return RecordingWorker(
            queue,
            joblog,
            concurrency=self.config.concurrency if concurrency is None else concurrency,
            poll_interval=self.config.poll_interval,
        )

    def output(self, name: str) -> Path:
        """An empty file for a process's output: ``<phase>-<sync><name>.err``."""
        output = self._path(name, ".err")
        output.unlink(missing_ok=True)
        self.worker_outputs.append(output)
        return output

    async def spawn(self, db: Path, log: Path, name: str, url: str | None = None) -> WorkerProcess:
        """Start a worker process on ``db`` (on the API at ``url``, if given); its output
        goes to ``<phase>-<sync><name>.err``."""
        output = self.output(name)
        return await spawn_worker(
            db=db,
            log=log,
            sync=self.sync,
            concurrency=self.config.concurrency,
            poll_interval=self.config.poll_interval,
            stderr_path=output,
            url=url,
        )

    async def stats(self, db: Path) -> QueueStats:
        """``get_queue_stats()`` read through a fresh queue object."""
        async with self.queue(db) as queue:
            return await queue.get_queue_stats()

    def cleanup(self) -> None:
        """Delete the phase's databases unless ``--keep-files`` (logs stay)."""
        if not self.config.keep_files:
            for path in self._databases:
                _remove_database(path)


def _remove_database(path: Path) -> None:
    for suffix in _DB_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
