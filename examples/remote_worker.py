"""A remote worker: the same QueueWorker subclass, on a server's API instead of a file.

    pip install 'asyncqueue[remote]'
    QUEUE_API_TOKEN=<a worker token> python remote_worker.py http://host:8000/api

It claims ``PrismQ.YouTube.ScrapeShorts`` tasks (the seed's example type) four at a time,
keeps each task's result with it, and stops gracefully on SIGTERM or Ctrl-C. ``MAX_RUNS``
stops it after that many tasks; ten failed attempts in a row stop it with exit status 1.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from asyncqueue import JobResult, QueueWorker, RemoteQueue, WorkerError
from asyncqueue.signals import stop_on_signals


class ShortsWorker(QueueWorker):
    async def process_job(
        self, job_type: str, target_id: str, metadata: dict[str, Any]
    ) -> bool | JobResult:
        query = metadata.get("search_query", target_id)
        await asyncio.sleep(0.01)  # call the YouTube API here
        return JobResult({"search_query": query, "shorts": [], "total_found": 0})


async def main() -> int:
    api_url = sys.argv[1] if len(sys.argv) > 1 else None  # else $QUEUE_API_URL
    max_runs = int(os.environ.get("MAX_RUNS", "0")) or None
    async with RemoteQueue(api_url) as queue:
        worker = ShortsWorker(
            queue,
            concurrency=4,
            job_types=["PrismQ.YouTube.ScrapeShorts"],
            max_runs=max_runs,
            max_consecutive_errors=10,
        )
        try:
            async with stop_on_signals(worker):
                await worker.start()
        except WorkerError as exc:
            print(exc, file=sys.stderr)
            return 1
    print(f"stopped after {worker.jobs_processed} tasks ({worker.jobs_failed} failed attempts)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
