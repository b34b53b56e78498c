"""A FastAPI app that enqueues jobs and runs workers inside its own process.

The lifespan opens the queue (``QUEUE_DB_PATH``, default ``./asyncqueue.db``), makes it the
default queue for ``enqueue_job``/``get_queue_status``, and starts ``APP_WORKERS`` workers
(default 2) as background tasks; on shutdown it stops them gracefully and closes the queue.
With ``APP_WORKERS=0`` the app only enqueues, and workers run in other processes on the same
file (see the README's "Several processes, one file").

Run it with (the ``examples`` extra installs uvicorn)::

    pip install -e '.[examples]'
    python examples/fastapi_app.py          # or: uvicorn fastapi_app:app --app-dir examples

then::

    curl -X POST 'http://127.0.0.1:8000/api/download-transcript?video_id=abc&priority=1'
    curl http://127.0.0.1:8000/api/queue-status
    curl http://127.0.0.1:8000/api/jobs/1
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, HTTPException

from asyncqueue import (
    JobQueue,
    QueueWorker,
    ValidationError,
    enqueue_job,
    get_default_queue,
    get_queue_status,
    set_default_queue,
)


class JobType(StrEnum):
    DOWNLOAD_TRANSCRIPT = "download_transcript"


class TranscriptWorker(QueueWorker):
    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        await asyncio.sleep(0.05)  # download the video, extract the transcript, ...
        return True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    worker_count = int(os.environ.get("APP_WORKERS", "2"))
    async with JobQueue() as queue:  # path and settings from the QUEUE_* variables
        set_default_queue(queue)
        workers = [TranscriptWorker(queue, concurrency=4) for _ in range(worker_count)]
        tasks = [asyncio.create_task(worker.start()) for worker in workers]
        try:
            yield
        finally:
            # Graceful: no new claims; running jobs get shutdown_grace_period (30 s) to
            # finish, and any still running after that go back to pending.
            await asyncio.gather(*(worker.stop() for worker in workers))
            await asyncio.gather(*tasks)
            set_default_queue(None)


app = FastAPI(title="asyncqueue example", lifespan=lifespan)


@app.post("/api/download-transcript")
async def download_transcript(video_id: str, priority: int = 5) -> dict[str, Any]:
    try:
        job_id = await enqueue_job(JobType.DOWNLOAD_TRANSCRIPT, video_id, priority=priority)
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    # created is False when the same video was already queued: job_id is that job's.
    return {"job_id": job_id, "status": "queued", "created": job_id.created}


@app.get("/api/queue-status")
async def queue_status() -> dict[str, int]:
    return await get_queue_status()


@app.get("/api/jobs/{job_id}")
async def job_detail(job_id: int) -> dict[str, Any]:
    job = await get_default_queue().get_job(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id}")
    return job.to_dict()


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
