"""The batched hot paths: outcomes applied in one statement, group commit, the claim's plan.

- A batch of outcomes (successes, retries, a dead letter, a release, and one whose lease
  was lost meanwhile) applies exactly the right transitions, each fenced by its lease token.
- A process that dies between its claim and its batched completion loses nothing: its jobs
  come back through lease expiry and every job completes exactly once.
- Group commit: a write the database rejects fails only its own caller; the others in the
  same transaction commit, and a multi-statement submission rolls back only its own rows.
- EXPLAIN QUERY PLAN: every claim statement reads the ready index, and the other hot
  statements are index or rowid lookups, never a scan of ``jobs``.
- Claim order of every strategy with mixed priorities and a delayed job.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from support import Recording, sqlite_storage

from asyncqueue import JobQueue, JobStatus, ManualClock
from asyncqueue.errors import AsyncQueueError, DatabaseError
from asyncqueue.job import ClaimedJob, JobId
from asyncqueue.storage import sqlite_sql as sql
from asyncqueue.storage.base import FinishedJob, Strategy
from asyncqueue.storage.sqlite_connection import SQLiteWriter, rows
from asyncqueue.validation import NewJob

# Most of this module is SQLite's writer (group commits, merged statements, its query plans)
# or reads the SQLite file directly: those tests are marked. Claim order, delayed jobs and
# the claim's text round trip are the queue's promises on both backends.
_SQLITE = pytest.mark.sqlite_only

REPO_ROOT = Path(__file__).resolve().parents[1]
LEASE_SECONDS = 30 * 60.0  # the default job_timeout_minutes, as the queue fixture uses it
LEASE_EXPIRED = (
    "lease expired: worker {} stopped renewing it (crashed, or hung past job_timeout_minutes)"
)


def raw_jobs(db: Path) -> dict[int, dict[str, Any]]:
    """Every column of every job row, read straight from the file (committed data only)."""
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return {row["id"]: dict(row) for row in conn.execute("SELECT * FROM jobs ORDER BY id")}


# -- batched completions ----------------------------------------------------------------


@_SQLITE
async def test_one_batch_applies_exactly_the_right_transition_to_each_job(
    queue: JobQueue, clock: ManualClock, db_path: Path
) -> None:
    t_start = clock.now()
    names = ["f2", "r", "s1", "s2", "f1", "d", "lost"]
    ids = await queue.enqueue_many(
        [
            {"job_type": "batch", "target_id": "f2", "priority": 1},
            {"job_type": "batch", "target_id": "r", "priority": 1},
            {"job_type": "batch", "target_id": "s1"},
            {"job_type": "batch", "target_id": "s2"},
            {"job_type": "batch", "target_id": "f1"},
            {"job_type": "batch", "target_id": "d", "max_retries": 0},
            {"job_type": "batch", "target_id": "lost"},
        ]
    )
    job = dict(zip(names, (int(i) for i in ids), strict=True))

    # f2 and r fail once first: the batch then also shows the backoff growing with
    # retry_count, and a release keeping the retry count and the earlier error.
    early = await queue.claim("A", limit=2)
    assert [j.id for j in early] == [job["f2"], job["r"]]
    applied, _ = await queue.finish_and_claim(
        [queue.outcome(j, f"early {j.target_id}") for j in early], worker_id="A", limit=0
    )
    assert applied == {job["f2"], job["r"]}
    clock.advance(1.0)  # their first backoff (retry_base_delay 1 s) has passed
    t_claim = clock.now()

    held = {j.id: j for j in await queue.claim("A", limit=len(names))}
    assert set(held) == set(job.values())
    assert held[job["f2"]].retry_count == held[job["r"]].retry_count == 1

    # A keeps renewing every lease but one; that one runs out, is recovered and goes to B.
    clock.advance(1000.0)
    keep = [j for j in held.values() if j.id != job["lost"]]
    assert await queue.renew_leases(keep) == set(job.values()) - {job["lost"]}
    clock.advance(801.0)  # t_claim + 1801: past the lost job's lease only
    t_recover = clock.now()
    assert await queue.recover_stale_jobs() == 1
    taken_by_b = await queue.claim("B", limit=10)
    assert [j.id for j in taken_by_b] == [job["lost"]]
    b_lease = taken_by_b[0].lease_token
    assert b_lease != held[job["lost"]].lease_token

    clock.advance(5.0)
    t_batch = clock.now()
    outcomes = [
        queue.outcome(held[job["s1"]], None),
        queue.outcome(held[job["f1"]], "boom f1"),
        queue.released(held[job["r"]]),
        queue.outcome(held[job["lost"]], None),  # stale: A's lease on it is gone
        queue.outcome(held[job["d"]], "boom d"),
        queue.outcome(held[job["s2"]], None),
        queue.outcome(held[job["f2"]], "boom f2"),
        FinishedJob(999_999, "no-such-lease", JobStatus.COMPLETED),  # unknown id: ignored
    ]
    assert [o.status for o in outcomes] == [
        JobStatus.COMPLETED,
        JobStatus.RETRY_SCHEDULED,
        JobStatus.PENDING,
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.COMPLETED,
        JobStatus.RETRY_SCHEDULED,
        JobStatus.COMPLETED,
    ]

    applied, claimed = await queue.finish_and_claim(outcomes, worker_id="A", limit=0)

    assert applied == {job[n] for n in ("s1", "s2", "f1", "f2", "d", "r")}
    assert claimed == []

    # The token of the attempt that finished stays (a repeated report is recognised by it);
    # a released job's is cleared with its lease.
    done_by_a = {
        "lease_expires_at": None,
        "started_at": t_claim,
        "updated_at": t_batch,
    }
    expected: dict[str, dict[str, Any]] = {
        "s1": {
            "status": "completed",
            "retry_count": 0,
            "attempts": 1,
            "run_at": t_start,
            "error_message": None,
            "worker_id": "A",
            "completed_at": t_batch,
            "active": None,
            **done_by_a,
        },
        "f1": {
            "status": "retry_scheduled",
            "retry_count": 1,
            "attempts": 1,
            "run_at": t_batch + 1.0,
            "error_message": "boom f1",
            "worker_id": "A",
            "completed_at": None,
            "active": 1,
            **done_by_a,
        },
        "f2": {
            "status": "retry_scheduled",
            "retry_count": 2,
            "attempts": 2,
            "run_at": t_batch + 2.0,  # 1 s * 2 ** 1
            "error_message": "boom f2",
            "worker_id": "A",
            "completed_at": None,
            "active": 1,
            **done_by_a,
        },
        "d": {
            "status": "failed",
            "retry_count": 0,
            "attempts": 1,
            "run_at": t_start,
            "error_message": "boom d",
            "worker_id": "A",
            "completed_at": t_batch,
            "active": None,
            **done_by_a,
        },
        "r": {
            "status": "pending",
            "retry_count": 1,  # unchanged by the release
            "attempts": 2,
            "run_at": t_batch,
            "error_message": "early r",  # the earlier attempt's error is kept
            "worker_id": None,
            "completed_at": None,
            "active": 1,
            **done_by_a,
        },
        "lost": {  # exactly as B's claim left it
            "status": "processing",
            "retry_count": 1,
            "attempts": 2,
            "run_at": t_recover,
            "error_message": LEASE_EXPIRED.format("A"),
            "worker_id": "B",
            "completed_at": None,
            "active": 1,
            "lease_token": b_lease,
            "lease_expires_at": t_recover + LEASE_SECONDS,
            "started_at": t_recover,
            "updated_at": t_recover,
        },
    }
    expected["s2"] = {**expected["s1"]}
    for name in ("s1", "s2", "f1", "f2", "d"):
        expected[name]["lease_token"] = held[job[name]].lease_token
    expected["r"]["lease_token"] = None
    stored = raw_jobs(db_path)
    assert set(stored) == set(job.values())  # nothing inserted for the unknown id
    for name, want in expected.items():
        row = stored[job[name]]
        assert {key: row[key] for key in want} == want, name

    # The same batch again applies nothing: every lease it names is spent.
    again, _ = await queue.finish_and_claim(outcomes, worker_id="A", limit=0)
    assert again == set()
    assert raw_jobs(db_path) == stored

    # Finished jobs freed their (job_type, target_id) pair; the others still hold it.
    assert (await queue.enqueue("batch", "s1")).created
    assert (await queue.enqueue("batch", "d")).created
    assert not (await queue.enqueue("batch", "f1")).created
    assert not (await queue.enqueue("batch", "r")).created
    assert not (await queue.enqueue("batch", "lost")).created

    # B still holds the lost job and can finish it.
    assert await queue.complete(taken_by_b[0])
    finished = await queue.get_job(job["lost"])
    assert finished is not None
    assert (finished.status, finished.worker_id, finished.attempts) == (
        JobStatus.COMPLETED,
        "B",
        2,
    )


@_SQLITE
async def test_completions_go_out_together_beside_other_outcomes_and_clear_old_errors(
    queue: JobQueue, clock: ManualClock, db_path: Path
) -> None:
    """Plain completions share one statement; each still gets exactly its own transition."""
    names = [f"c{i}" for i in range(70)] + ["again", "fails", "released"]
    ids = await queue.enqueue_many([{"job_type": "mix", "target_id": n} for n in names])
    job = dict(zip(names, (int(i) for i in ids), strict=True))
    (first_try,) = await queue.claim("A", limit=1, job_types=("mix",))
    assert first_try.id == job["c0"]
    # c0 fails once, so its completion below must clear the earlier error.
    await queue.finish_and_claim([queue.outcome(first_try, "flaky")], worker_id="A", limit=0)
    clock.advance(60.0)
    held = {j.target_id: j for j in await queue.claim("A", limit=len(names))}
    assert set(held) == set(names)
    clock.advance(2.0)
    t_done = clock.now()
    outcomes = [queue.outcome(held[n], None) for n in names if n.startswith("c")]
    outcomes.insert(35, queue.outcome(held["fails"], "boom"))
    outcomes.insert(10, queue.released(held["released"]))
    outcomes.append(queue.outcome(held["again"], None))

    applied, _ = await queue.finish_and_claim(outcomes, worker_id="A", limit=0)

    assert applied == set(job.values())
    stored = raw_jobs(db_path)
    for name in [n for n in names if n.startswith("c")] + ["again"]:
        row = stored[job[name]]
        assert (row["status"], row["error_message"], row["completed_at"]) == (
            "completed",
            None,
            t_done,
        ), name
        assert (row["active"], row["lease_token"], row["lease_expires_at"]) == (
            None,
            held[name].lease_token,
            None,
        )
        assert row["worker_id"] == "A"
    assert (stored[job["c0"]]["retry_count"], stored[job["c0"]]["attempts"]) == (1, 2)
    assert stored[job["fails"]]["status"] == "retry_scheduled"
    assert stored[job["fails"]]["error_message"] == "boom"
    assert stored[job["released"]]["status"] == "pending"
    assert stored[job["released"]]["worker_id"] is None
    c0_history = [event.event.value for event in await queue.get_job_history(job["c0"])]
    assert c0_history == ["enqueued", "claimed", "retry_scheduled", "claimed", "completed"]
    for name in ("c1", "c69", "again"):
        history = [event.event.value for event in await queue.get_job_history(job[name])]
        assert history == ["enqueued", "claimed", "completed"], name


@_SQLITE
async def test_an_exchange_naming_a_lost_lease_is_undone_and_applied_exactly_once(
    queue: JobQueue, db_path: Path
) -> None:
    """Outcomes go out without RETURNING; a lost lease makes the exchange run again exactly.

    The first try, claim included, must leave nothing behind: no transition, history row or
    claimed job twice.
    """
    ids = {
        name: int(await queue.enqueue("swap", name)) for name in ("done", "stale", "new1", "new2")
    }
    _, held = await queue.finish_and_claim([], worker_id="A", limit=2)
    by_name = {job.target_id: job for job in held}
    assert set(by_name) == {"done", "stale"}
    outcomes = [
        queue.outcome(by_name["done"], None),
        FinishedJob(ids["stale"], "not-its-token", JobStatus.COMPLETED),
    ]
    applied, claimed = await queue.finish_and_claim(outcomes, worker_id="A", limit=5)
    assert applied == {ids["done"]}
    assert sorted(job.target_id for job in claimed) == ["new1", "new2"]

    stored = raw_jobs(db_path)
    assert stored[ids["done"]]["status"] == "completed"
    assert stored[ids["done"]]["error_message"] is None
    assert stored[ids["stale"]]["status"] == "processing"
    assert stored[ids["stale"]]["lease_token"] == by_name["stale"].lease_token
    for job in claimed:
        row = stored[job.id]
        assert (row["status"], row["attempts"], row["lease_token"]) == (
            "processing",
            1,
            job.lease_token,
        )
    history = {
        name: [event.event.value for event in await queue.get_job_history(job_id)]
        for name, job_id in ids.items()
    }
    assert history == {
        "done": ["enqueued", "claimed", "completed"],
        "stale": ["enqueued", "claimed"],
        "new1": ["enqueued", "claimed"],
        "new2": ["enqueued", "claimed"],
    }


async def test_claimed_jobs_carry_their_metadata_and_text_exactly(queue: JobQueue) -> None:
    """The claim hands jobs over as one JSON document: every value must come back as stored."""
    metadata = {
        "big": 2**70,
        "negative": -(2**63),
        "float": 0.1,
        "tiny": 5e-324,
        "exp": 1.5e300,
        "text": 'quote " backslash \\ tab \t newline \n nul-free \u2028 é 漢字 🎉',
        "nested": [{"a": None, "b": [True, False]}, []],
        "empty": {},
        "zero": 0,
    }
    target = 'id "with" \\ quotes, é and 🎉'
    await queue.enqueue("data", target, priority=3, max_retries=7, metadata=metadata)
    await queue.enqueue("data", "plain")
    _, claimed = await queue.finish_and_claim([], worker_id="W", limit=2)
    first, second = sorted(claimed, key=lambda job: job.priority)
    assert (first.job_type, first.target_id, first.priority, first.max_retries) == (
        "data",
        target,
        3,
        7,
    )
    assert first.metadata == metadata
    assert type(first.metadata["big"]) is int
    assert type(first.metadata["float"]) is float
    assert (first.retry_count, first.worker_id) == (0, "W")
    assert (second.target_id, second.metadata) == ("plain", {})
    assert len({first.lease_token, second.lease_token}) == 2


# -- a crash between claim and batched completion ------------------------------------------

CRASH_SCRIPT = """
import asyncio, json, os, sys
from asyncqueue import JobQueue

async def main(path):
    queue = JobQueue(path, job_timeout_minutes=0.01, retry_base_delay=1.0)
    await queue.open()
    held = await queue.claim("crasher", limit=6)
    outcomes = [queue.outcome(j, None) for j in held[:3]] + [queue.outcome(held[3], "boom")]
    applied, more = await queue.finish_and_claim(outcomes, worker_id="crasher", limit=2)
    report = {
        "claimed": [j.id for j in held],
        "applied": sorted(applied),
        "claimed_more": [j.id for j in more],
    }
    print(json.dumps(report), flush=True)
    os._exit(1)  # no close, no release: the held jobs are left in processing

asyncio.run(main(sys.argv[1]))
"""


@_SQLITE  # reads the SQLite file; test_exactly_once kills workers on both
async def test_a_crash_between_claim_and_batched_completion_loses_nothing(db_path: Path) -> None:
    # The child uses the real clock; this process a manual one starting at real time, moved
    # by hand to just before and just after the leases the child left behind.
    clock = ManualClock(start=time.time())
    async with JobQueue(
        db_path, clock=clock, job_timeout_minutes=0.01, retry_base_delay=1.0
    ) as queue:
        ids = [
            int(i)
            for i in await queue.enqueue_many(
                [{"job_type": "work", "target_id": f"t{n}"} for n in range(1, 11)]
            )
        ]
        target = {job_id: f"t{n}" for n, job_id in enumerate(ids, start=1)}

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        child = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", CRASH_SCRIPT, str(db_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert child.returncode == 1, child.stderr
        report = json.loads(child.stdout)
        assert report["claimed"] == ids[:6]
        assert report["applied"] == ids[:4]
        assert report["claimed_more"] == ids[6:8]

        # What the crash left: 3 completed, 1 retry scheduled, 4 held by a dead process.
        stored = raw_jobs(db_path)
        assert [stored[i]["status"] for i in ids] == ["completed"] * 3 + ["retry_scheduled"] + [
            "processing"
        ] * 4 + ["pending"] * 2
        held_ids = ids[4:8]
        assert {stored[i]["worker_id"] for i in held_ids} == {"crasher"}
        leases = [stored[i]["lease_expires_at"] for i in held_ids]

        clock.advance(min(leases) - 0.001 - clock.now())
        assert await queue.recover_stale_jobs() == 0  # no lease has run out yet
        clock.advance(max(leases) + 0.001 - clock.now())
        t_recover = clock.now()
        assert await queue.recover_stale_jobs() == 4
        stored = raw_jobs(db_path)
        for i in held_ids:
            row = stored[i]
            assert (row["status"], row["retry_count"], row["attempts"]) == ("pending", 1, 1)
            assert (row["lease_token"], row["lease_expires_at"]) == (None, None)
            assert row["run_at"] == t_recover
            assert row["error_message"] == LEASE_EXPIRED.format("crasher")

        clock.advance(2.0)  # the failed job's backoff (1 s) has passed too
        worker = Recording(queue, worker_id="rescuer", concurrency=3)
        assert await worker.run_until_idle() == 7

        stats = await queue.get_queue_stats()
        stored = raw_jobs(db_path)

    done_by_child = [target[i] for i in ids[:3]]
    counts = Counter(done_by_child + worker.ran)
    assert counts == Counter(target.values())  # every job completed exactly once
    assert sorted(worker.ran) == sorted(target[i] for i in ids[3:])
    assert stats.completed_jobs == stats.total_jobs == 10
    # (worker_id, attempts, retry_count): the child's completions, its failed attempt, the
    # four it died holding (one lost attempt counted), and the two it never claimed.
    assert [
        (stored[i]["worker_id"], stored[i]["attempts"], stored[i]["retry_count"]) for i in ids
    ] == [("crasher", 1, 0)] * 3 + [("rescuer", 2, 1)] * 5 + [("rescuer", 1, 0)] * 2
    assert all(row["status"] == "completed" for row in stored.values())
    assert all(row["lease_expires_at"] is None for row in stored.values())


# -- group commit -----------------------------------------------------------------------------


class HeldWriter:
    """Keeps the writer busy in its thread until released, so submissions pile up."""

    def __init__(self, writer: SQLiteWriter) -> None:
        self.writer = writer
        self.started = threading.Event()
        self.release = threading.Event()
        self.commits = 0
        self._original = writer.on_commit
        writer.on_commit = self._count

    def _count(self) -> None:
        self.commits += 1
        if self._original is not None:
            self._original()

    def hold(self, conn: sqlite3.Connection) -> str:
        self.started.set()
        assert self.release.wait(10.0)
        return "held"

    async def start(self) -> asyncio.Task[str]:
        task = asyncio.create_task(self.writer.submit(self.hold))
        while not self.started.is_set():
            await asyncio.sleep(0.001)
        return task

    async def wait_for_inbox(self, size: int) -> None:
        deadline = time.monotonic() + 10.0
        while len(self.writer._inbox) < size:
            assert time.monotonic() < deadline, f"only {len(self.writer._inbox)} submissions"
            await asyncio.sleep(0.001)

    def restore(self) -> None:
        self.writer.on_commit = self._original


def new_job(job_type: str, target_id: str, metadata_json: str, now: float) -> NewJob:
    return NewJob(job_type, target_id, 5, 3, metadata_json, now)


def count_by_type(db: Path) -> dict[str, int]:
    with closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT job_type, count(*) FROM jobs GROUP BY job_type"))


def assert_rejected_by_database(result: object) -> None:
    assert isinstance(result, DatabaseError), result
    assert isinstance(result, AsyncQueueError)
    assert isinstance(result.__cause__, sqlite3.IntegrityError)
    assert "CHECK constraint failed" in str(result)
    assert "json_valid" in str(result)


@_SQLITE
async def test_a_write_rejected_by_the_database_fails_only_its_caller_in_a_group(
    queue: JobQueue, clock: ManualClock, db_path: Path
) -> None:
    storage = sqlite_storage(queue)
    now = clock.now()
    await queue.enqueue("held", "h")
    [held_job] = await queue.claim("w", limit=1)

    def two_writes(conn: sqlite3.Connection) -> str:
        # Two statements: the first inserts, the second is rejected. Its savepoint must
        # take back the first row, and nothing else in the transaction.
        rows(conn, sql.INSERT_JOB, ("multi", "first", 5, 3, "{}", now, now, now))
        rows(conn, sql.INSERT_JOB, ("multi", "second", 5, 3, "{not json", now, now, now))
        return "unreachable"

    held = HeldWriter(storage._write_side())
    try:
        busy = await held.start()
        group = asyncio.gather(
            *(queue.enqueue("good", f"g{i}") for i in range(10)),
            storage.insert_jobs([new_job("bad", "one", "{not json", now)], now),
            *(queue.enqueue("good", f"g{i}") for i in range(10, 20)),
            storage._write_side().submit(two_writes),
            # Between two unlike writes: runs on its own, not merged with other inserts.
            storage.insert_jobs([new_job("bad", "two", '{"a": nul}', now)], now),
            queue.enqueue_many([{"job_type": "batch", "target_id": f"b{i}"} for i in range(3)]),
            queue.finish_and_claim([queue.outcome(held_job, None)], worker_id="w", limit=0),
            return_exceptions=True,
        )
        await held.wait_for_inbox(25)
        assert held.commits == 0
        held.release.set()
        assert await busy == "held"
        results = await group
    finally:
        held.release.set()
        held.restore()

    assert held.commits == 2  # the held write alone, then all 25 in one transaction
    good = [*results[0:10], *results[11:21]]
    assert all(isinstance(r, JobId) and r.created for r in good), good
    assert len(set(good)) == 20
    assert_rejected_by_database(results[10])  # a bad insert among good ones
    assert_rejected_by_database(results[21])  # the two-statement submission
    assert_rejected_by_database(results[22])  # a bad insert between unlike writes
    batch = results[23]
    assert isinstance(batch, list)
    assert len(batch) == 3
    assert all(r.created for r in batch)
    assert results[24] == ({held_job.id}, [])

    assert count_by_type(db_path) == {"good": 20, "batch": 3, "held": 1}
    stored = raw_jobs(db_path)
    assert sorted(r["target_id"] for r in stored.values() if r["job_type"] == "good") == sorted(
        f"g{i}" for i in range(20)
    )
    assert stored[held_job.id]["status"] == "completed"

    # The queue keeps working: a rejected write alone (writer idle), then ordinary work.
    with pytest.raises(DatabaseError) as rejected:
        await storage.insert_jobs([new_job("bad", "alone", "[1,", now)], now)
    assert_rejected_by_database(rejected.value)
    later = await queue.enqueue("after", "x")
    assert later.created
    more = await queue.enqueue_many([{"job_type": "after", "target_id": f"y{i}"} for i in range(3)])
    assert all(r.created for r in more)
    claimed = await queue.claim("w", limit=100, job_types=("after",))
    assert sorted(j.id for j in claimed) == sorted([int(later), *map(int, more)])
    applied, _ = await queue.finish_and_claim(
        [queue.outcome(j, None) for j in claimed], worker_id="w", limit=0
    )
    assert applied == {j.id for j in claimed}
    assert count_by_type(db_path) == {"good": 20, "batch": 3, "held": 1, "after": 4}


@_SQLITE
async def test_pipelined_writes_queue_in_the_thread_each_its_own_transaction(
    queue: JobQueue, clock: ManualClock, db_path: Path
) -> None:
    """A worker's exchange goes to the thread while another write is in flight.

    It runs as its own transaction right after the one in flight (no group, no savepoint),
    a failing one fails only its caller, and a write already waiting in the inbox keeps
    its turn: a pipelined write that comes after it waits in the inbox too.
    """
    storage = sqlite_storage(queue)
    writer = storage._write_side()
    now = clock.now()

    def insert(target: str, metadata: str = "{}") -> Callable[[sqlite3.Connection], int]:
        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(sql.INSERT_JOB, ("p", target, 5, 3, metadata, now, now, now))
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        return run

    held = HeldWriter(writer)
    try:
        busy = await held.start()
        first = asyncio.create_task(writer.submit(insert("one"), pipelined=True))
        bad = asyncio.create_task(writer.submit(insert("bad", "{nope"), pipelined=True))
        second = asyncio.create_task(writer.submit(insert("two"), pipelined=True))
        await asyncio.sleep(0.01)
        # Nothing waits in the inbox: all three are queued in the connection's thread.
        assert not writer._inbox
        held.release.set()
        assert await busy == "held"
        ids = [await first, await second]
        with pytest.raises(DatabaseError):
            await bad
        assert held.commits == 3  # the held write, then "one" and "two" each alone

        held.release.clear()
        held.started.clear()
        busy = await held.start()
        grouped = asyncio.create_task(queue.enqueue("g", "x"))
        await held.wait_for_inbox(1)
        late = asyncio.create_task(writer.submit(insert("three"), pipelined=True))
        await held.wait_for_inbox(2)
        held.release.set()
        await busy
        waited_first = await grouped
        ids.append(await late)
    finally:
        held.release.set()
        held.restore()
    assert waited_first.created
    assert int(waited_first) < ids[-1]  # the inbox kept its turn
    assert ids == sorted(ids)
    assert count_by_type(db_path) == {"p": 3, "g": 1}


@_SQLITE
async def test_a_rejected_multi_row_insert_rolls_back_only_its_rows_in_a_group(
    queue: JobQueue, clock: ManualClock, db_path: Path
) -> None:
    """Three enqueue_many-sized inserts share a transaction; the one with a bad row adds none."""
    storage = sqlite_storage(queue)
    now = clock.now()
    held = HeldWriter(storage._write_side())
    try:
        busy = await held.start()
        group = asyncio.gather(
            storage.insert_jobs([new_job("ok", f"o{i}", "{}", now) for i in range(50)], now),
            storage.insert_jobs(
                [new_job("broken", f"x{i}", "{}", now) for i in range(49)]
                + [new_job("broken", "x49", '{"unterminated": ', now)],
                now,
            ),
            storage.insert_jobs([new_job("ok", f"p{i}", "{}", now) for i in range(50)], now),
            return_exceptions=True,
        )
        await held.wait_for_inbox(3)
        held.release.set()
        await busy
        ok_first, broken, ok_last = await group
    finally:
        held.release.set()
        held.restore()

    assert held.commits == 2
    assert_rejected_by_database(broken)
    assert isinstance(ok_first, list)
    assert isinstance(ok_last, list)
    assert len(set(ok_first) | set(ok_last)) == 100
    assert count_by_type(db_path) == {"ok": 100}
    # The broken batch's pairs were never taken: enqueueing them now creates them.
    assert all(
        r.created
        for r in await queue.enqueue_many(
            [{"job_type": "broken", "target_id": f"x{i}"} for i in range(50)]
        )
    )


@_SQLITE
async def test_concurrent_enqueues_of_one_pair_in_a_group_create_one_job(
    queue: JobQueue, db_path: Path
) -> None:
    storage = sqlite_storage(queue)
    held = HeldWriter(storage._write_side())
    try:
        busy = await held.start()
        group = asyncio.gather(
            *(queue.enqueue("same", "pair" if i % 2 else f"other{i}") for i in range(40))
        )
        await held.wait_for_inbox(40)
        held.release.set()
        await busy
        results = await group
    finally:
        held.release.set()
        held.restore()

    assert held.commits == 2
    pair = [results[i] for i in range(1, 40, 2)]
    assert [r.created for r in pair] == [True] + [False] * 19
    assert len(set(pair)) == 1
    assert all(results[i].created for i in range(0, 40, 2))
    assert count_by_type(db_path) == {"same": 21}


# -- EXPLAIN QUERY PLAN -------------------------------------------------------------------------

PLAN_PARAMS: dict[str, Any] = {
    "worker_id": "w",
    "lease_expires_at": 2.0,
    "now": 1.0,
    "limit": 10,
    "job_types": '["a", "b"]',
    "finished": '[[1, "token", "completed", null, null, 0]]',
    "leases": '[[1, "token"]]',
    "done": '[[1, "token"], [2, "token"]]',
    "expires_at": 2.0,
    "id": 1,
    "before": 1.0,
}

_JOBS_ACCESS = re.compile(r"^(SCAN|SEARCH) jobs\b")
_READY_INDEX = re.compile(r"^(SCAN|SEARCH) jobs USING (COVERING )?INDEX jobs_ready_by_priority\b")
_ROWID = re.compile(r"^SEARCH jobs USING INTEGER PRIMARY KEY \(rowid=\?\)$")


def query_plan(conn: sqlite3.Connection, statement: str, params: Any = PLAN_PARAMS) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params)]


def jobs_access(plan: list[str]) -> list[str]:
    """The plan lines that read the jobs table."""
    return [line for line in plan if _JOBS_ACCESS.match(line)]


@pytest.fixture(params=["fresh", "analyzed"])
async def planned_db(request: pytest.FixtureRequest, db_path: Path, clock: ManualClock) -> Path:
    """A migrated database; "analyzed": a skewed backlog and ANALYZE statistics, which
    could tempt the planner away from the intended index."""
    async with JobQueue(db_path, clock=clock) as queue:
        if request.param == "analyzed":
            await queue.enqueue_many(
                [
                    {"job_type": f"t{i % 3}", "target_id": str(i), "priority": 1 + i % 10}
                    for i in range(3000)
                ]
            )
            claimed = await queue.claim("w", limit=2500)
            await queue.finish_and_claim(
                [queue.outcome(j, None) for j in claimed[:2400]], worker_id="w", limit=0
            )
    if request.param == "analyzed":
        with closing(sqlite3.connect(db_path)) as conn:
            conn.execute("ANALYZE")
            assert conn.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] > 0
    return db_path


@_SQLITE
@pytest.mark.parametrize("typed", [False, True], ids=["all-types", "job-types"])
@pytest.mark.parametrize("strategy", ["priority", "fifo", "lifo"])
def test_every_claim_statement_reads_the_ready_index(
    planned_db: Path, strategy: Strategy, typed: bool
) -> None:
    with closing(sqlite3.connect(planned_db)) as conn:
        plan = query_plan(conn, sql.CLAIM_IDS[(strategy, typed)])
    reads = jobs_access(plan)
    # Every strategy: one range per priority, ending at the first job not yet due.
    assert (
        reads == ["SEARCH jobs USING INDEX jobs_ready_by_priority (priority=? AND run_at<?)"] * 10
    ), plan
    assert not any(line.startswith("SCAN jobs") and "USING" not in line for line in plan)


@_SQLITE
@pytest.mark.parametrize("statement", ["CLAIM_JOBS", "CLAIMED_JOBS"])
def test_the_claim_takes_and_reads_the_chosen_jobs_by_rowid(
    planned_db: Path, statement: str
) -> None:
    with closing(sqlite3.connect(planned_db)) as conn:
        plan = query_plan(conn, getattr(sql, statement), {**PLAN_PARAMS, "ids": "[1, 2]"})
    assert jobs_access(plan) == ["SEARCH jobs USING INTEGER PRIMARY KEY (rowid=?)"], plan
    assert not any(line.startswith("SCAN jobs") for line in plan), plan


ROWID_LOOKUP = ["SEARCH jobs USING INTEGER PRIMARY KEY (rowid=?)"]


def finish_statements() -> list[tuple[str, str]]:
    """The statement(s) applying a batch of outcomes: one, or one per rows-per-statement size."""
    by_size: dict[int, str] | None = getattr(sql, "FINISH_ROWS", None)
    if by_size is not None:
        returning: dict[int, str] = getattr(sql, "FINISH_ROWS_RETURNING", {})
        completions = [
            (name, getattr(sql, name))
            for name in ("FINISH_COMPLETED", "FINISH_COMPLETED_RETURNING")
            if hasattr(sql, name)
        ]
        return (
            completions
            + [(f"FINISH_ROWS[{n}]", statement) for n, statement in by_size.items()]
            + [(f"FINISH_ROWS_RETURNING[{n}]", statement) for n, statement in returning.items()]
        )
    return [("FINISH_JOBS", getattr(sql, "FINISH_JOBS"))]  # noqa: B009 - may not exist


HOT_STATEMENTS: list[tuple[str, str, list[str]]] = [
    *((name, statement, ROWID_LOOKUP) for name, statement in finish_statements()),
    ("RENEW_LEASES", sql.RENEW_LEASES, ROWID_LOOKUP),
    (
        "RECOVER_STALE_JOBS",
        sql.RECOVER_STALE_JOBS,
        ["SEARCH jobs USING INDEX jobs_status_type (status=?)"],
    ),
    ("CANCEL_JOB", sql.CANCEL_JOB, ROWID_LOOKUP),
    ("RETRY_JOB", sql.RETRY_JOB, ROWID_LOOKUP),
    (
        "DELETE_FINISHED_JOBS",
        sql.DELETE_FINISHED_JOBS,
        ["SEARCH jobs USING INDEX jobs_finished (completed_at<?)"],
    ),
]


@_SQLITE
@pytest.mark.parametrize(
    ("statement", "expected"),
    [pytest.param(statement, expected, id=name) for name, statement, expected in HOT_STATEMENTS],
)
def test_the_other_hot_statements_never_scan_jobs(
    planned_db: Path, statement: str, expected: list[str]
) -> None:
    # Positional statements get a dummy value per "?"; named ones the shared dict.
    params: Any = [1] * statement.count("?") if "?" in statement else PLAN_PARAMS
    with closing(sqlite3.connect(planned_db)) as conn:
        plan = query_plan(conn, statement, params)
    assert jobs_access(plan) == expected, plan
    assert not any(line.startswith("SCAN jobs") for line in plan), plan


@_SQLITE
def test_the_duplicate_lookup_uses_the_active_pair_index(planned_db: Path) -> None:
    with closing(sqlite3.connect(planned_db)) as conn:
        plan = query_plan(conn, sql.SELECT_ACTIVE_ID, ("t1", "42"))
    assert len(plan) == 1, plan
    assert re.fullmatch(
        r"SEARCH jobs USING (COVERING )?INDEX jobs_active_pair \(job_type=\? AND target_id=\?\)",
        plan[0],
    ), plan


# -- claim order ---------------------------------------------------------------------------------

# (target, priority, delay in seconds); enqueued in this order, so ids follow it.
ORDER_JOBS = [
    ("a", 5, 0.0),
    ("b", 1, 30.0),  # delayed: the highest priority and the second oldest
    ("c", 10, 0.0),
    ("d", 3, 0.0),
    ("e", 1, 0.0),
    ("f", 5, 0.0),
    ("g", 3, 0.0),
    ("h", 10, 0.0),
]

STRATEGIES: tuple[Strategy, ...] = ("priority", "fifo", "lifo")

# Claimed 3 at t0, 3 at t0 + 29.5 (b not due yet), then everything at t0 + 30 (b due).
EXPECTED_ORDER: dict[str, list[list[str]]] = {
    "priority": [["e", "d", "g"], ["a", "f", "c"], ["b", "h"]],
    "fifo": [["a", "c", "d"], ["e", "f", "g"], ["b", "h"]],
    "lifo": [["h", "g", "f"], ["e", "d", "c"], ["b", "a"]],
}


@pytest.mark.parametrize("typed", [False, True], ids=["all-types", "job-types"])
@pytest.mark.parametrize("strategy", ["priority", "fifo", "lifo"])
async def test_claim_order_of_every_strategy_with_priorities_and_a_delayed_job(
    queue: JobQueue, clock: ManualClock, strategy: Strategy, typed: bool
) -> None:
    items: list[dict[str, Any]] = []
    for target, priority, delay in ORDER_JOBS:
        items.append(
            {"job_type": "work", "target_id": target, "priority": priority, "delay": delay}
        )
        if typed:  # other types in between, at the top priority, must be passed over
            items.append({"job_type": "other", "target_id": target, "priority": 1})
    await queue.enqueue_many(items)
    job_types = ("work",) if typed else None
    if not typed:
        assert len(items) == len(ORDER_JOBS)

    async def claim(limit: int) -> list[ClaimedJob]:
        return await queue.claim("w", limit=limit, strategy=strategy, job_types=job_types)

    first = await claim(3)
    clock.advance(29.5)
    second = await claim(3)
    clock.advance(0.5)  # exactly b's run_at: due
    third = await claim(10)

    claims = [first, second, third]
    assert [[j.target_id for j in c] for c in claims] == EXPECTED_ORDER[strategy]
    assert all(j.job_type == "work" for c in claims for j in c)
    assert await claim(10) == []
    stored = await queue.list_jobs(job_type="work")
    assert {j.status for j in stored} == {JobStatus.PROCESSING}
    if typed:
        others = await queue.list_jobs(job_type="other")
        assert {j.status for j in others} == {JobStatus.PENDING}


async def test_a_delayed_job_is_not_claimed_a_moment_before_its_run_at(
    queue: JobQueue, clock: ManualClock
) -> None:
    await queue.enqueue("work", "later", priority=1, delay=10.0)
    for strategy in STRATEGIES:
        assert await queue.claim("w", limit=5, strategy=strategy) == []
    clock.advance(9.5)
    for strategy in STRATEGIES:
        assert await queue.claim("w", limit=5, strategy=strategy) == []
    clock.advance(0.5)
    [job] = await queue.claim("w", limit=5, strategy="lifo")
    assert job.target_id == "later"
