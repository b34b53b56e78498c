"""A custom worker in the seed document's style, on asyncqueue.

The code follows the seed's "Quick Start", "Creating a Custom Worker", "Integration with
BaseWorker" and "Monitoring & Maintenance" sections; apart from the import line, what
changed is what the seed left to the reader: the app's own ``JobType`` enum, a stand-in for
its synchronous ``TranscriptWorker``, and a ``main()`` that runs it all.

Run it with::

    python examples/custom_worker.py [DATABASE_FILE]

The database defaults to ``./asyncqueue-custom-worker.db``, deleted first so reruns are clean.
"""

from __future__ import annotations

import asyncio
import sys
from enum import Enum
from pathlib import Path

from asyncqueue import JobQueue, QueueWorker, enqueue_job, get_queue_status, set_default_queue


class JobType(Enum):
    """The app's job types (the seed's list); asyncqueue stores the values."""

    DOWNLOAD_TRANSCRIPT = "download_transcript"
    PROCESS_CHANNEL = "process_channel"
    TRANSCRIBE_AUDIO = "transcribe_audio"
    GENERATE_CONTENT = "generate_content"
    SYNC_STORAGE = "sync_storage"
    QUALITY_CHECK = "quality_check"
    CLEANUP = "cleanup"


# -- "Creating a Custom Worker" ---------------------------------------------------------


class MyWorker(QueueWorker):
    async def process_job(self, job_type: str, target_id: str, metadata: dict) -> bool:
        if job_type == JobType.DOWNLOAD_TRANSCRIPT.value:
            # Your processing logic here
            print(f"Processing {target_id}")
            await asyncio.sleep(0.1)  # Simulate work
            return True  # Success
        return False  # Unknown job type


# -- "Integration with BaseWorker" --------------------------------------------------------


class TranscriptWorker:
    """Stands in for the seed's synchronous ``workers.base.BaseWorker`` subclass."""

    def validate_input(self, input_data: dict) -> bool:
        return "video_id" in input_data

    def execute(self, input_data: dict) -> dict:
        # Your transcript processing logic
        return {"transcript_path": f"/transcripts/{input_data['video_id']}.txt"}

    def run(self, input_data: dict) -> dict:
        if not self.validate_input(input_data):
            return {"status": "error", "error": "video_id missing"}
        return {"status": "success", **self.execute(input_data)}


class QueuedTranscriptWorker(QueueWorker):
    def __init__(self, queue):
        super().__init__(queue)
        self.transcript_worker = TranscriptWorker()

    async def process_job(self, job_type: str, target_id: str, metadata: dict) -> bool:
        result = self.transcript_worker.run({"video_id": target_id})
        print(f"Transcript for {target_id}: {result['transcript_path']}")
        return result["status"] == "success"


async def main(path: Path) -> None:
    # "Error Handling & Retry Logic": the seed's settings (db_manager becomes a file path).
    queue = JobQueue(
        path,
        retry_base_delay=1.0,  # Start with 1s delay
        retry_backoff_multiplier=2.0,  # Double each retry
        job_timeout_minutes=30,  # Consider job stale after 30min
        max_retries=3,  # Default max retries
    )
    # The app's one-time setup, in place of the seed's db_manager.initialize():
    # enqueue_job() and get_queue_status() act on this queue from now on.
    set_default_queue(queue)

    # -- "Quick Start" --------------------------------------------------------------------
    job_id = await enqueue_job(
        JobType.DOWNLOAD_TRANSCRIPT.value,
        "video_id_123",
        priority=1,  # Highest priority
        max_retries=3,
    )
    print(f"Enqueued job {job_id}")

    status = await get_queue_status()
    print(f"Pending: {status['pending']}, Processing: {status['processing']}")

    # A type MyWorker does not handle: it returns False, and with no retries left the job
    # ends up failed (the monitoring section below finds it).
    await enqueue_job(JobType.QUALITY_CHECK.value, "video_id_123", max_retries=0)

    # -- "Creating a Custom Worker": drain what is due, then return ------------------------
    worker = MyWorker(queue)
    ran = await worker.run_until_idle()
    print(f"MyWorker ran {ran} jobs")

    # -- The seed's `await worker.start()  # Runs until stopped`, stopped gracefully -------
    transcripts = QueuedTranscriptWorker(queue)
    running = asyncio.create_task(transcripts.start())
    transcript_job = await enqueue_job(JobType.TRANSCRIBE_AUDIO.value, "video_id_456")
    async with asyncio.timeout(10):
        while (job := await queue.get_job(transcript_job)) is None or job.status != "completed":
            await asyncio.sleep(0.05)
    await transcripts.stop()  # no new claims; running jobs get their grace period
    await running

    # -- "Monitoring & Maintenance" -------------------------------------------------------
    # Get comprehensive queue statistics
    stats = await queue.get_queue_stats()
    print(f"Total jobs: {stats.total_jobs}")
    print(f"Pending: {stats.pending_jobs}")
    print(f"Active workers: {stats.active_workers}")

    # Get failed jobs for investigation
    failed_jobs = await queue.get_failed_jobs()
    for job in failed_jobs:
        print(f"Job {job['id']}: {job['error_message']}")

    # Cleanup old completed jobs (older than 7 days by default)
    cleaned_count = await queue.cleanup_old_jobs()
    print(f"Cleaned up {cleaned_count} old jobs")

    # Recover stale jobs from crashed workers
    recovered_count = await queue.recover_stale_jobs()
    print(f"Recovered {recovered_count} stale jobs")

    set_default_queue(None)
    await queue.close()


if __name__ == "__main__":
    db_path = Path(sys.argv[1] if len(sys.argv) > 1 else "asyncqueue-custom-worker.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    asyncio.run(main(db_path))
