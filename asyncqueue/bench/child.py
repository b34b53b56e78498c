"""A worker process: ``python -m asyncqueue.bench.child --db FILE --log FILE ...``.

Runs one :class:`RecordingWorker` until SIGTERM (or SIGINT), then stops it gracefully with
``worker.stop()``. Exits 0 after a clean stop, 2 if the worker ended on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from asyncqueue import JobQueue, RemoteQueue
from asyncqueue.bench.joblog import JobLogWriter
from asyncqueue.bench.liblog import configure_library_logging
from asyncqueue.bench.recorder import RecordingWorker


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The child's command line (built by :func:`asyncqueue.bench.procs.spawn_worker`)."""
    parser = argparse.ArgumentParser(prog="python -m asyncqueue.bench.child")
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema", default=None, help="PostgreSQL: the queue's schema")
    parser.add_argument("--log", required=True)
    parser.add_argument("--sync", choices=("NORMAL", "FULL"), default="NORMAL")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=None)
    parser.add_argument("--ready", default=None, help="file created once SIGTERM is handled")
    parser.add_argument("--url", default=None, help="work through this API instead of --db")
    return parser.parse_args(argv)


async def run_worker(args: argparse.Namespace) -> int:
    """Work until a stop signal arrives; return the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.ready is not None:
        _mark_ready(args.ready)
    joblog = JobLogWriter(args.log)
    queue: JobQueue | RemoteQueue = (
        JobQueue(args.db, synchronous=args.sync, schema=args.schema)
        if args.url is None
        else RemoteQueue(args.url)
    )
    try:
        async with queue:
            worker = RecordingWorker(
                queue, joblog, concurrency=args.concurrency, poll_interval=args.poll_interval
            )
            running = asyncio.create_task(worker.start())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                stopping.cancel()
                running.result()
                print("worker ended before it was stopped", file=sys.stderr)
                return 2
            await worker.stop()
            await running
    finally:
        joblog.close()
    return 0


def _mark_ready(path: str) -> None:
    # Until now a SIGTERM would kill the process outright: the parent waits for this file.
    Path(path).touch()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the worker process."""
    configure_library_logging(sys.stderr)
    return asyncio.run(run_worker(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
