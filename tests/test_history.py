"""Job history (the job_events table) and the in-process event subscription."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from support import query

from asyncqueue import JobEvent, JobEventType, JobQueue, JobStatus, ManualClock, QueueWorker

LEASE_MINUTES = 1.0


class Outcomes(QueueWorker):
    """Fails or succeeds as each call's script says."""

    def __init__(self, queue: JobQueue, script: list[bool], **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.script = script

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        if not self.script.pop(0):
            raise RuntimeError("boom")
        return True


def kinds(events: list[JobEvent]) -> list[tuple[str, str]]:
    return [(e.event.value, e.status.value) for e in events]


async def test_history_records_every_transition_of_a_job_that_fails_retries_recovers_and_completes(
    db_path: Path, clock: ManualClock
) -> None:
    async with JobQueue(
        db_path, clock=clock, retry_base_delay=10.0, job_timeout_minutes=LEASE_MINUTES
    ) as queue:
        job_id = await queue.enqueue("email", "u1", max_retries=3)

        # attempt 1 fails -> retry scheduled after 10 s
        assert await Outcomes(queue, [False], worker_id="w1").run_until_idle() == 1
        clock.advance(10.0)

        # attempt 2: claimed by a worker that then vanishes; its lease expires
        [claimed] = await queue.claim("crashed", limit=1)
        assert claimed.id == job_id
        clock.advance(LEASE_MINUTES * 60 + 1)
        assert await queue.recover_stale_jobs() == 1

        # attempt 3 completes
        assert await Outcomes(queue, [True], worker_id="w2").run_until_idle() == 1

        history = await queue.get_job_history(job_id)

    assert kinds(history) == [
        ("enqueued", "pending"),
        ("claimed", "processing"),
        ("retry_scheduled", "retry_scheduled"),
        ("claimed", "processing"),
        ("recovered", "pending"),
        ("claimed", "processing"),
        ("completed", "completed"),
    ]
    assert [e.worker_id for e in history] == [None, "w1", "w1", "crashed", "crashed", "w2", "w2"]
    retry = history[2]
    assert retry.error == "RuntimeError: boom"
    assert retry.run_at is not None
    assert retry.run_at.timestamp() == retry.at.timestamp() + 10.0
    assert history[4].error is not None
    assert "lease expired" in history[4].error
    assert all(e.job_id == job_id and e.job_type == "email" for e in history)
    times = [e.at for e in history]
    assert times == sorted(times)


async def test_history_records_cancel_manual_retry_release_and_final_failure(
    queue: JobQueue, clock: ManualClock
) -> None:
    cancelled = await queue.enqueue("t", "cancel-me")
    assert await queue.cancel_job(cancelled)
    assert await queue.retry_job(cancelled)

    doomed = await queue.enqueue("t", "doomed", max_retries=0)
    await Outcomes(queue, [True, False], worker_id="w").run_until_idle()

    released = await queue.enqueue("t", "released")
    [job] = await queue.claim("w", limit=1)
    assert job.id == released
    assert await queue.release(job)

    assert kinds(await queue.get_job_history(cancelled))[:3] == [
        ("enqueued", "pending"),
        ("cancelled", "cancelled"),
        ("retried", "pending"),
    ]
    assert kinds(await queue.get_job_history(doomed))[-1] == ("failed", "failed")
    assert kinds(await queue.get_job_history(released)) == [
        ("enqueued", "pending"),
        ("claimed", "processing"),
        ("released", "pending"),
    ]


async def test_a_duplicate_enqueue_and_a_lost_lease_record_nothing(
    db_path: Path, clock: ManualClock
) -> None:
    async with JobQueue(db_path, clock=clock, job_timeout_minutes=LEASE_MINUTES) as queue:
        first = await queue.enqueue("t", "x")
        assert not (await queue.enqueue("t", "x")).created
        [stale] = await queue.claim("a", limit=1)
        clock.advance(LEASE_MINUTES * 60 + 1)
        await queue.recover_stale_jobs()
        [fresh] = await queue.claim("b", limit=1)
        assert not await queue.complete(stale)  # lease lost: discarded, not recorded
        assert await queue.complete(fresh)
        history = await queue.get_job_history(first)

    assert kinds(history) == [
        ("enqueued", "pending"),
        ("claimed", "processing"),
        ("recovered", "pending"),
        ("claimed", "processing"),
        ("completed", "completed"),
    ]
    assert history[-1].worker_id == "b"


async def test_history_is_written_in_the_same_transaction_as_the_transition(
    queue: JobQueue, db_path: Path
) -> None:
    """A write that fails leaves neither the job change nor its event behind."""
    kept = await queue.enqueue("t", "a")
    with pytest.raises(ValueError, match="priority"):
        await queue.enqueue_many(
            [
                {"job_type": "t", "target_id": "b"},
                {"job_type": "t", "target_id": "c", "priority": 0},
            ]
        )
    # PostgreSQL reads a job's "enqueued" event from its row; later events are rows.
    stray_events = query(db_path, f"SELECT count(*) FROM job_events WHERE job_id <> {kept}")
    jobs = query(db_path, "SELECT count(*) FROM jobs")[0][0]
    assert (jobs, stray_events[0][0]) == (1, 0)
    assert kinds(await queue.get_job_history(kept)) == [("enqueued", "pending")]


async def test_cleanup_removes_the_history_of_the_jobs_it_deletes(
    queue: JobQueue, db_path: Path, clock: ManualClock
) -> None:
    old = await queue.enqueue("t", "old")
    await Outcomes(queue, [True]).run_until_idle()
    clock.advance(8 * 86400)
    kept = await queue.enqueue("t", "kept")

    assert await queue.cleanup_old_jobs() == 1

    assert await queue.get_job_history(old) == []
    assert kinds(await queue.get_job_history(kept)) == [("enqueued", "pending")]


async def test_history_can_be_switched_off(db_path: Path, clock: ManualClock) -> None:
    async with JobQueue(db_path, clock=clock, record_history=False) as queue:
        job_id = await queue.enqueue("t", "x")
        seen: list[JobEvent] = []
        queue.subscribe(seen.append)
        await Outcomes(queue, [True]).run_until_idle()
        assert await queue.get_job_history(job_id) == []
    # subscribers still hear about transitions
    assert [e.event for e in seen] == [JobEventType.CLAIMED, JobEventType.COMPLETED]


async def test_history_setting_comes_from_the_environment(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_RECORD_HISTORY", "false")
    assert JobQueue(db_path).settings.record_history is False
    assert JobQueue(db_path, record_history=True).settings.record_history is True


async def test_subscribers_get_each_committed_transition_in_order(
    queue: JobQueue, clock: ManualClock
) -> None:
    seen: list[JobEvent] = []
    unsubscribe = queue.subscribe(seen.append)
    job_id = await queue.enqueue("t", "x", max_retries=1)
    await Outcomes(queue, [False], worker_id="w").run_until_idle()
    unsubscribe()
    await queue.enqueue("t", "after-unsubscribe")

    assert [(e.job_id, e.event) for e in seen] == [
        (job_id, JobEventType.ENQUEUED),
        (job_id, JobEventType.CLAIMED),
        (job_id, JobEventType.RETRY_SCHEDULED),
    ]
    assert seen[2].status is JobStatus.RETRY_SCHEDULED
    assert seen[2].error == "RuntimeError: boom"


async def test_a_failing_subscriber_does_not_break_the_queue(queue: JobQueue) -> None:
    def broken(event: JobEvent) -> None:
        raise RuntimeError("subscriber bug")

    seen: list[JobEvent] = []
    queue.subscribe(broken)
    queue.subscribe(seen.append)
    job_id = await queue.enqueue("t", "x")
    assert job_id.created
    assert [e.event for e in seen] == [JobEventType.ENQUEUED]


async def test_events_iterator_yields_transitions_and_bounds_its_buffer(queue: JobQueue) -> None:
    async with queue.events(max_buffer=2) as events:
        for target in ("a", "b", "c"):
            await queue.enqueue("t", target)
        got = [await asyncio.wait_for(anext(events), 1) for _ in range(2)]
    assert [e.event for e in got] == [JobEventType.ENQUEUED, JobEventType.ENQUEUED]
    assert len({e.job_id for e in got}) == 2


@pytest.mark.sqlite_only  # a SQLite file of schema version 1
async def test_a_database_from_schema_version_1_is_migrated(db_path: Path) -> None:
    """A file written by the first release gains the history table on open."""
    from asyncqueue.storage import sqlite_sql as sql

    with closing(sqlite3.connect(db_path)) as db:
        for statement in sql.MIGRATIONS[1]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(f"PRAGMA application_id = {sql.APPLICATION_ID}")
        db.execute(
            "INSERT INTO jobs (job_type, target_id, priority, max_retries, created_at, run_at,"
            " updated_at) VALUES ('t', 'old', 5, 3, 1, 1, 1)"
        )
        db.commit()

    async with JobQueue(db_path) as queue:
        job_id = await queue.enqueue("t", "new")
        assert kinds(await queue.get_job_history(job_id)) == [("enqueued", "pending")]
        assert (await queue.get_queue_stats()).pending_jobs == 2
    with closing(sqlite3.connect(db_path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == sql.SCHEMA_VERSION


async def test_history_of_a_batch_matches_what_subscribers_heard(
    queue: JobQueue, db_path: Path
) -> None:
    """Rows written by the triggers and by the storage code agree with the announcements.

    Thirty jobs in a few exchanges: some complete, some are retried, some fail for good, so
    one transaction mixes trigger-written rows (enqueued, claimed, completed,
    retry_scheduled) with rows the storage code writes (failed).
    """
    heard: list[JobEvent] = []
    queue.subscribe(heard.append)
    ids = [await queue.enqueue("t", str(n), max_retries=0 if n % 3 == 0 else 1) for n in range(30)]
    # Odd calls fail: a job with a retry left is retried, one without fails for good.
    script = [n % 2 == 0 for n in range(60)]
    await Outcomes(queue, script, worker_id="w", concurrency=4).run_until_idle()

    def fields(e: JobEvent) -> tuple[Any, ...]:
        return (e.event, e.status, e.at, e.worker_id, e.job_type, e.error, e.run_at)

    for job_id in ids:
        recorded = await queue.get_job_history(job_id)
        announced = [e for e in heard if e.job_id == job_id]
        assert [fields(e) for e in recorded] == [fields(e) for e in announced]
    events = {e.event for e in heard}
    assert {JobEventType.COMPLETED, JobEventType.FAILED, JobEventType.RETRY_SCHEDULED} <= events


@pytest.mark.sqlite_only  # SQLite's TEMP triggers
async def test_history_follows_each_queue_setting_on_a_shared_file(db_path: Path) -> None:
    """The history triggers belong to the queue that asked for them, not to the file."""
    async with (
        JobQueue(db_path, record_history=True) as recording,
        JobQueue(db_path, record_history=False) as silent,
    ):
        quiet_job = await silent.enqueue("t", "quiet")
        await Outcomes(silent, [True]).run_until_idle()
        loud_job = await recording.enqueue("t", "loud")
        assert await recording.get_job_history(quiet_job) == []
        assert kinds(await recording.get_job_history(loud_job)) == [("enqueued", "pending")]
    with closing(sqlite3.connect(db_path)) as db:
        assert (
            db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0]
            == 0
        )


@pytest.mark.sqlite_only  # backup and restore are pg_dump's on PostgreSQL
async def test_history_is_still_recorded_after_a_restore(queue: JobQueue, tmp_path: Path) -> None:
    """Restoring a backup replaces the file's content under the writer: its triggers stay."""
    before = await queue.enqueue("t", "before")
    backup = tmp_path / "backup.db"
    await queue.backup(str(backup))
    await queue.enqueue("t", "lost-by-the-restore")

    await queue.restore(str(backup))
    after = await queue.enqueue("t", "after")
    await Outcomes(queue, [True, True]).run_until_idle()

    assert kinds(await queue.get_job_history(before)) == [
        ("enqueued", "pending"),
        ("claimed", "processing"),
        ("completed", "completed"),
    ]
    assert kinds(await queue.get_job_history(after)) == [
        ("enqueued", "pending"),
        ("claimed", "processing"),
        ("completed", "completed"),
    ]


async def test_each_job_an_enqueue_creates_gets_one_enqueued_row_and_duplicates_none(
    queue: JobQueue, db_path: Path
) -> None:
    """enqueue_many, and concurrent enqueues committed as one statement, record each new job.

    The enqueued rows are written after the INSERTs of a write, for the ids it created:
    duplicates (of an active job, or of an earlier item of the same call) create none.
    """
    existing = await queue.enqueue("t", "0")
    many = await queue.enqueue_many(
        [{"job_type": "t", "target_id": str(n % 7)} for n in range(20)]
        + [{"job_type": "u", "target_id": str(n)} for n in range(300)]
    )
    together = await asyncio.gather(
        *(queue.enqueue("v", str(n % 5)) for n in range(12)),
        *(queue.enqueue("t", str(n)) for n in range(3)),
    )
    created = {int(i) for i in [existing, *many, *together] if i.created}
    assert len(created) == 1 + 6 + 300 + 5

    jobs = await queue.list_jobs(limit=1000)
    assert sorted(job.id for job in jobs) == sorted(created)
    for job in jobs:
        (event,) = await queue.get_job_history(job.id)
        assert (event.event, event.status) == (JobEventType.ENQUEUED, JobStatus.PENDING)
        assert (event.at, event.job_type, event.run_at) == (
            job.created_at,
            job.job_type,
            job.run_at,
        )


async def test_a_queue_without_history_records_no_enqueue(db_path: Path) -> None:
    async with JobQueue(db_path, record_history=False) as queue:
        await queue.enqueue("t", "one")
        await queue.enqueue_many([{"job_type": "t", "target_id": str(n)} for n in range(50)])
        await asyncio.gather(*(queue.enqueue("u", str(n)) for n in range(10)))
        assert (await queue.get_queue_stats()).pending_jobs == 61
    assert query(db_path, "SELECT count(*) FROM job_events")[0][0] == 0
