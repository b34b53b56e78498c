"""What a phase gets to work with: settings, fresh files, queues and worker processes."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from asyncqueue import JobQueue, QueueStats
from asyncqueue.bench.config import BenchConfig, DbLocation, SchemaUrl, Sync
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
    _schemas: list[str] = field(default_factory=list)
    worker_outputs: list[Path] = field(default_factory=list)

    def _path(self, name: str, suffix: str) -> Path:
        return self.config.directory / f"{self.phase}-{self.sync.lower()}{name}{suffix}"

    def database(self, name: str = "") -> DbLocation:
        """A database file that does not exist yet, or (``--db``) a fresh PostgreSQL schema."""
        if self.config.db_url is not None:
            schema = re.sub(r"\W", "_", f"aq_bench_{self.phase}_{self.sync}{name}".lower())[:63]
            drop_schema(self.config.db_url, schema)
            self._schemas.append(schema)
            return SchemaUrl(self.config.db_url, schema)
        path = self._path(name, ".db")
        _remove_database(path)
        self._databases.append(path)
        return path

    def job_log(self, name: str = "") -> tuple[Path, JobLogReader]:
        """An empty job log and a reader for it."""
        path = self._path(name, ".log")
        path.unlink(missing_ok=True)
        return path, JobLogReader(path)

    def queue(self, db: DbLocation) -> JobQueue:
        """A :class:`JobQueue` on ``db`` with this phase's durability."""
        schema = db.schema if isinstance(db, SchemaUrl) else None
        return JobQueue(db, synchronous=self.sync, schema=schema)

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

    async def spawn(
        self, db: DbLocation, log: Path, name: str, url: str | None = None
    ) -> WorkerProcess:
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

    async def stats(self, db: DbLocation) -> QueueStats:
        """``get_queue_stats()`` read through a fresh queue object."""
        async with self.queue(db) as queue:
            return await queue.get_queue_stats()

    def cleanup(self) -> None:
        """Delete the phase's databases unless ``--keep-files`` (logs stay)."""
        if not self.config.keep_files:
            for path in self._databases:
                _remove_database(path)
            for schema in self._schemas:
                assert self.config.db_url is not None
                drop_schema(self.config.db_url, schema)


def drop_schema(url: str, schema: str) -> None:
    """Drop a PostgreSQL schema and its tables (run in a thread: callers are in the loop)."""
    import asyncpg  # type: ignore[import-untyped]

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    thread = threading.Thread(target=lambda: asyncio.run(drop()))
    thread.start()
    thread.join()


def _remove_database(path: Path) -> None:
    for suffix in _DB_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
