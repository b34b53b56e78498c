"""A worker in its own OS process, for the cross-process and crash tests.

Usage: python tests/worker_process.py DB --record FILE [options]

Jobs of type ``block`` write ``MARKERS/<target_id>.started`` and then sleep for an hour (the
crash test kills the process meanwhile). Every other job appends its target_id to the record
file (flushed at once) and succeeds. With ``--gate``, jobs first create the ``--ready`` file
and wait until the gate file exists, so the test can line up the other workers. SIGTERM
stops the worker gracefully and the process exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any, TextIO

from asyncqueue import JobQueue, QueueWorker


class FileRecordingWorker(QueueWorker):
    def __init__(
        self,
        queue: JobQueue,
        *,
        record: TextIO,
        markers: Path | None,
        ready: Path | None,
        gate: Path | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(queue, **kwargs)
        self.record = record
        self.markers = markers
        self.ready = ready
        self.gate = gate

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        if job_type == "block":
            assert self.markers is not None
            (self.markers / f"{target_id}.started").touch()
            await asyncio.sleep(3600)
        if self.gate is not None:
            assert self.ready is not None
            self.ready.touch()
            while not self.gate.exists():
                await asyncio.sleep(0.01)
        self.record.write(f"{target_id}\n")
        self.record.flush()
        return True


async def main(args: argparse.Namespace) -> None:
    queue = JobQueue(args.db, job_timeout_minutes=args.job_timeout_minutes)
    with open(args.record, "a", encoding="utf-8") as record:
        worker = FileRecordingWorker(
            queue,
            record=record,
            markers=args.markers,
            ready=args.ready,
            gate=args.gate,
            worker_id=args.worker_id,
            concurrency=args.concurrency,
            poll_interval=args.poll_interval,
        )
        stopping: list[asyncio.Task[None]] = []
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGTERM, lambda: stopping.append(asyncio.create_task(worker.stop()))
        )
        try:
            await worker.start()
        finally:
            await queue.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db")  # a SQLite file or a postgresql:// URL
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--markers", type=Path)
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--gate", type=Path)
    parser.add_argument("--worker-id")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--job-timeout-minutes", type=float, default=30.0)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
