"""The HTTP API in process: every route, fencing by lease, scopes, and bad input.

The app runs on the ASGI transport inside its lifespan (the sweeper off: these tests move
the queue's ManualClock and recover leases by hand).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from asyncqueue import (
    ConfigurationError,
    DatabaseBusyError,
    DatabaseError,
    JobQueue,
    ManualClock,
)
from asyncqueue.server import ApiTokens, create_app

TOKENS = ApiTokens.parse("admin adm\nworker wrk\nread rd")
ADMIN = {"Authorization": "Bearer adm"}
WORKER = {"Authorization": "Bearer wrk"}
READ = {"Authorization": "Bearer rd"}
LEASE = 1800.0  # the queue's default lease: job_timeout_minutes=30


@pytest.fixture
async def app(queue: JobQueue) -> AsyncIterator[FastAPI]:
    app = create_app(queue, tokens=TOKENS, sweep=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=WORKER) as c:
        yield c


def at(clock: ManualClock, seconds: float = 0.0) -> str:
    return datetime.fromtimestamp(clock.now() + seconds, UTC).isoformat()


async def enqueue(api: httpx.AsyncClient, target: str, **fields: Any) -> dict[str, Any]:
    body = {"type": "scrape", "target_id": target, **fields}
    response = await api.post("/api/tasks", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def claim(api: httpx.AsyncClient, worker: str = "w1", **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/tasks/claim", json={"worker_id": worker, **fields})
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


async def get(api: httpx.AsyncClient, task_id: int) -> dict[str, Any]:
    response = await api.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


# -- health ------------------------------------------------------------------------------


async def test_health_needs_no_token_and_says_unhealthy_when_the_queue_cannot_be_read(
    api: httpx.AsyncClient, queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = await api.get("/api/health", headers={"Authorization": ""})
    assert (response.status_code, response.json()) == (200, {"status": "healthy"})

    async def broken() -> None:
        raise DatabaseError("disk I/O error", queue.path)

    monkeypatch.setattr(queue, "get_queue_stats", broken)
    response = await api.get("/api/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert "disk I/O error" in response.json()["detail"]


async def test_a_database_in_trouble_is_503_with_retry_after(
    api: httpx.AsyncClient, queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def busy(job_id: int) -> None:
        raise DatabaseBusyError("database is locked", queue.path)

    monkeypatch.setattr(queue, "get_job", busy)
    response = await api.get("/api/tasks/1")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "database is locked" in response.json()["detail"]


# -- the seed's lifecycle ----------------------------------------------------------------


async def test_enqueue_claim_complete_and_read_the_result_back(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    created = await enqueue(api, "video-1", params={"search_query": "cats"}, priority=2)
    assert created["status"] == "pending"
    assert created["params"] == {"search_query": "cats"}
    assert created["created_at"] == at(clock)
    assert set(created) == {
        "id", "type", "target_id", "status", "params", "priority", "retry_count",
        "max_retries", "attempts", "created_at", "run_at", "claimed_at", "completed_at",
        "updated_at", "worker_id", "result", "error", "lease_token", "lease_expires_at",
    }  # fmt: skip

    task = await claim(api, task_types=["scrape"])
    assert task["id"] == created["id"]
    assert task["status"] == "processing"
    assert task["worker_id"] == "w1"
    assert task["claimed_at"] == at(clock)
    assert task["lease_expires_at"] == at(clock, LEASE)
    assert task["attempts"] == 1

    clock.advance(3)
    result = {"shorts": [{"video_id": "abc"}], "total_found": 1}
    response = await api.post(
        f"/api/tasks/{task['id']}/complete", json={"worker_id": "w1", "result": result}
    )
    assert (response.status_code, response.json()) == (200, {"status": "success"})

    done = await get(api, task["id"])
    assert done["status"] == "completed"
    assert done["result"] == result
    assert done["completed_at"] == at(clock)
    assert done["error"] is None


async def test_nothing_to_claim_is_404_with_a_null_body_and_an_empty_list_with_limit(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("/api/tasks/claim", json={"worker_id": "w1"})
    assert response.status_code == 404
    assert response.content == b"null"

    await enqueue(api, "other", type="other_type")
    response = await api.post("/api/tasks/claim", json={"worker_id": "w1", "task_types": ["x"]})
    assert response.status_code == 404

    response = await api.post("/api/tasks/claim", json={"worker_id": "w1", "limit": 5})
    assert (response.status_code, len(response.json()["tasks"])) == (200, 1)
    response = await api.post("/api/tasks/claim", json={"worker_id": "w1", "limit": 5})
    assert (response.status_code, response.json()) == (200, {"tasks": []})


async def test_claims_come_in_the_queues_order_priority_first_then_oldest(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    ids = {}
    for target, priority in [("low", 9), ("old", 3), ("new", 3), ("top", 1)]:
        ids[target] = (await enqueue(api, target, priority=priority))["id"]
        clock.advance(1)

    first = await claim(api)
    response = await api.post("/api/tasks/claim", json={"worker_id": "w2", "limit": 10})
    rest = [task["id"] for task in response.json()["tasks"]]
    assert [first["id"], *rest] == [ids["top"], ids["old"], ids["new"], ids["low"]]


async def test_a_failed_attempt_follows_the_retry_policy_until_the_task_fails(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    created = await enqueue(api, "flaky", max_retries=2)
    statuses = []
    for attempt, backoff in enumerate([1.0, 2.0, None]):
        task = await claim(api)
        assert task["id"] == created["id"]
        response = await api.post(
            f"/api/tasks/{task['id']}/fail", json={"worker_id": "w1", "error": f"boom {attempt}"}
        )
        assert response.json() == {"status": "success"}
        after = await get(api, task["id"])
        statuses.append(after["status"])
        assert after["error"] == f"boom {attempt}"
        if backoff is not None:
            assert after["run_at"] == at(clock, backoff)
            response = await api.post("/api/tasks/claim", json={"worker_id": "w1"})
            assert response.status_code == 404, "not before its backoff has passed"
            clock.advance(backoff)
    assert statuses == ["retry_scheduled", "retry_scheduled", "failed"]
    assert after["retry_count"] == 2
    assert after["attempts"] == 3

    failed = (await api.get("/api/tasks/failed", headers=READ)).json()["tasks"]
    assert [task["id"] for task in failed] == [created["id"]]


# -- fencing -----------------------------------------------------------------------------


async def test_another_worker_or_a_wrong_lease_token_gets_409_and_changes_nothing(
    api: httpx.AsyncClient, queue: JobQueue
) -> None:
    await enqueue(api, "t")
    task = await claim(api, "w1")
    url = f"/api/tasks/{task['id']}"
    attempts = [
        ("complete", {"worker_id": "w2", "result": 1}),
        ("fail", {"worker_id": "w2", "error": "x"}),
        ("heartbeat", {"worker_id": "w2"}),
        ("complete", {"worker_id": "w1", "lease_token": "not-the-token"}),
        ("fail", {"worker_id": "w1", "error": "x", "lease_token": "nope"}),
    ]
    for verb, body in attempts:
        response = await api.post(f"{url}/{verb}", json=body)
        assert response.status_code == 409, (verb, body)
        assert response.json()["status"] == "processing"
        assert response.json()["cancelled"] is False
    assert (await get(api, task["id"]))["status"] == "processing"
    assert len(await queue.get_job_history(task["id"])) == 2  # enqueued, claimed

    response = await api.post(f"{url}/complete", json={"worker_id": "w1", "lease_token": "?"})
    assert response.status_code == 409
    response = await api.post("/api/tasks/999/complete", json={"worker_id": "w1"})
    assert response.status_code == 404


async def test_a_late_report_after_the_lease_expired_and_another_worker_took_the_task_is_409(
    api: httpx.AsyncClient, queue: JobQueue, clock: ManualClock
) -> None:
    await enqueue(api, "slow")
    first = await claim(api, "w1")
    clock.advance(LEASE + 1)
    assert await queue.recover_stale_jobs() == 1
    second = await claim(api, "w2")
    assert second["id"] == first["id"]
    assert second["lease_token"] != first["lease_token"]

    url = f"/api/tasks/{first['id']}/complete"
    late = await api.post(url, json={"worker_id": "w1", "result": "late"})
    assert late.status_code == 409
    stale = await api.post(
        url, json={"worker_id": "w2", "result": "x", "lease_token": first["lease_token"]}
    )
    assert stale.status_code == 409
    ok = await api.post(
        url, json={"worker_id": "w2", "result": "fresh", "lease_token": second["lease_token"]}
    )
    assert ok.status_code == 200
    task = await get(api, first["id"])
    assert (task["status"], task["result"], task["worker_id"]) == ("completed", "fresh", "w2")
    response = await api.post(f"/api/tasks/{first['id']}/heartbeat", json={"worker_id": "w1"})
    assert response.status_code == 409
    assert response.json()["status"] == "completed"


async def test_a_late_fail_after_a_recovery_failed_the_task_is_no_repeat(
    api: httpx.AsyncClient, queue: JobQueue, clock: ManualClock
) -> None:
    await enqueue(api, "last-chance", max_retries=0)
    task = await claim(api, "w1")
    clock.advance(LEASE + 1)
    assert await queue.recover_stale_jobs() == 1
    assert (await get(api, task["id"]))["status"] == "failed"
    response = await api.post(
        f"/api/tasks/{task['id']}/fail", json={"worker_id": "w1", "error": "x"}
    )
    assert (response.status_code, response.json()["status"]) == (409, "failed")
    assert "lease expired" in (await get(api, task["id"]))["error"]


async def test_a_repeated_report_answers_200_again_and_changes_nothing(
    api: httpx.AsyncClient, queue: JobQueue, clock: ManualClock
) -> None:
    await enqueue(api, "a")
    await enqueue(api, "b")
    done = await claim(api)
    failed = await claim(api)
    complete = {"worker_id": "w1", "result": {"n": 1}, "lease_token": done["lease_token"]}
    fail = {"worker_id": "w1", "error": "boom"}
    for _ in range(2):
        assert (await api.post(f"/api/tasks/{done['id']}/complete", json=complete)).is_success
        assert (await api.post(f"/api/tasks/{failed['id']}/fail", json=fail)).is_success
    histories = [await queue.get_job_history(t["id"]) for t in (done, failed)]
    snapshots = [await get(api, t["id"]) for t in (done, failed)]

    clock.advance(1)
    assert (await api.post(f"/api/tasks/{done['id']}/complete", json=complete)).is_success
    assert (await api.post(f"/api/tasks/{done['id']}/complete", json=complete)).is_success
    assert (await api.post(f"/api/tasks/{failed['id']}/fail", json=fail)).is_success
    assert [await queue.get_job_history(t["id"]) for t in (done, failed)] == histories
    assert [await get(api, t["id"]) for t in (done, failed)] == snapshots
    assert [len(h) for h in histories] == [3, 3]

    # The other kind of report, or another worker, is no repeat.
    wrong_kind = await api.post(f"/api/tasks/{done['id']}/fail", json=fail)
    assert wrong_kind.status_code == 409
    other = await api.post(f"/api/tasks/{failed['id']}/fail", json={**fail, "worker_id": "w9"})
    assert other.status_code == 409


async def test_heartbeat_extends_the_lease_by_the_queues_lease_or_the_asked_length(
    api: httpx.AsyncClient, queue: JobQueue, clock: ManualClock
) -> None:
    await enqueue(api, "long")
    task = await claim(api)
    url = f"/api/tasks/{task['id']}/heartbeat"
    clock.advance(LEASE - 10)
    response = await api.post(url, json={"worker_id": "w1", "lease_token": task["lease_token"]})
    assert response.status_code == 200
    assert response.json() == {
        "lease_expires_at": at(clock, LEASE),
        "status": "processing",
        "cancelled": False,
    }
    clock.advance(LEASE - 10)
    assert await queue.recover_stale_jobs() == 0, "the heartbeat kept the lease"

    response = await api.post(url, json={"worker_id": "w1", "lease_seconds": 7200})
    assert response.json()["lease_expires_at"] == at(clock, 7200)
    assert (await get(api, task["id"]))["lease_expires_at"] == at(clock, 7200)


async def test_claim_with_lease_seconds_sets_the_lease_of_each_task(
    api: httpx.AsyncClient, queue: JobQueue, clock: ManualClock
) -> None:
    await enqueue(api, "a")
    await enqueue(api, "b")
    response = await api.post(
        "/api/tasks/claim", json={"worker_id": "w1", "limit": 2, "lease_seconds": 60}
    )
    claimed = response.json()["tasks"]
    assert [task["lease_expires_at"] for task in claimed] == [at(clock, 60)] * 2
    clock.advance(61)
    assert await queue.recover_stale_jobs() == 2


# -- long polls --------------------------------------------------------------------------


async def test_a_long_poll_claim_returns_the_task_enqueued_while_it_waits(
    api: httpx.AsyncClient, queue: JobQueue
) -> None:
    poll = asyncio.create_task(api.post("/api/tasks/claim", json={"worker_id": "w1", "wait": 10}))
    await asyncio.sleep(0.05)  # let the poll find the queue empty and start waiting
    assert not poll.done()
    job_id = await queue.enqueue("scrape", "late")
    async with asyncio.timeout(5):
        response = await poll
    assert response.status_code == 200
    assert response.json()["id"] == job_id


async def test_a_long_poll_claim_gives_up_after_its_wait(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/tasks/claim", json={"worker_id": "w1", "wait": 0.05})
    assert response.status_code == 404
    response = await api.post(
        "/api/tasks/claim", json={"worker_id": "w1", "wait": 0.05, "limit": 2}
    )
    assert response.json() == {"tasks": []}


async def test_wait_returns_on_an_enqueue_or_at_its_timeout_and_claims_nothing(
    api: httpx.AsyncClient, queue: JobQueue
) -> None:
    seq = (await api.post("/api/tasks/wait", json={"since": 0, "timeout": 0})).json()["seq"]
    response = await api.post("/api/tasks/wait", json={"since": seq, "timeout": 0.05})
    assert response.json() == {"seq": seq, "due": False}, "nothing happened: the timeout ends it"

    waiting = asyncio.create_task(
        api.post("/api/tasks/wait", json={"since": seq, "timeout": 10, "task_types": ["scrape"]})
    )
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await queue.enqueue("scrape", "x")
    async with asyncio.timeout(5):
        after = (await waiting).json()["seq"]
    assert after > seq
    assert (await queue.get_queue_stats()).pending_jobs == 1

    # On PostgreSQL the enqueue's NOTIFY comes back as a second wake-up a moment later.
    await asyncio.sleep(0.2)
    now = (await api.post("/api/tasks/wait", json={"since": 0, "timeout": 0})).json()["seq"]
    assert now >= after
    stale = await api.post("/api/tasks/wait", json={"since": now + 1000, "timeout": 10})
    assert stale.json() == {"seq": now, "due": False}, "a count from an earlier server answers"


async def test_wait_answers_when_a_delayed_task_comes_due(
    api: httpx.AsyncClient, queue: JobQueue, clock: ManualClock
) -> None:
    """A task coming due sends no notification: the wait reads the due times itself, so an
    idle remote worker need not claim to find it."""
    await queue.enqueue("scrape", "later", delay=30)
    await queue.enqueue("other", "not-asked-for")
    seq = (await api.post("/api/tasks/wait", json={"since": 0, "timeout": 0})).json()["seq"]
    waiting = asyncio.create_task(
        api.post("/api/tasks/wait", json={"since": seq, "timeout": 20, "task_types": ["scrape"]})
    )
    async with asyncio.timeout(10):
        while not clock._sleepers:  # the wait reads the due time each second
            await asyncio.sleep(0.01)
    assert not waiting.done(), "a task of another type due now does not end the wait"
    clock.advance(30)
    async with asyncio.timeout(10):
        answer = (await waiting).json()
    assert answer == {"seq": seq, "due": True}
    assert (await queue.get_queue_stats()).pending_jobs == 2, "the wait claims nothing"


async def test_a_long_poll_claim_takes_a_delayed_task_when_it_comes_due(
    api: httpx.AsyncClient, queue: JobQueue, clock: ManualClock
) -> None:
    job_id = await queue.enqueue("scrape", "later", delay=30)
    claiming = asyncio.create_task(
        api.post("/api/tasks/claim", json={"worker_id": "w1", "wait": 20})
    )
    async with asyncio.timeout(10):
        while not clock._sleepers:  # the wait reads the due time each second
            await asyncio.sleep(0.01)
    clock.advance(30)
    async with asyncio.timeout(10):
        response = await claiming
    assert response.status_code == 200
    assert response.json()["id"] == job_id


# -- the batching routes -----------------------------------------------------------------


async def test_exchange_applies_completed_failed_and_released_outcomes_and_claims(
    api: httpx.AsyncClient, queue: JobQueue
) -> None:
    for target in ["a", "b", "c", "d", "e"]:
        await enqueue(api, target)
    response = await api.post(
        "/api/tasks/exchange", json={"worker_id": "w1", "claim": {"limit": 3}}
    )
    body = response.json()
    assert body["applied"] == []
    assert body["lease_seconds"] == LEASE
    assert isinstance(body["seq"], int)
    a, b, c = body["tasks"]
    finished = [
        {"id": a["id"], "lease_token": a["lease_token"], "outcome": "completed", "result": [1]},
        {"id": b["id"], "lease_token": b["lease_token"], "outcome": "failed", "error": "bad"},
        {"id": c["id"], "lease_token": c["lease_token"], "outcome": "released"},
        {"id": 999, "lease_token": "x", "outcome": "completed"},
    ]
    exchange = {
        "worker_id": "w1",
        "finished": finished,
        "claim": {"limit": 10, "strategy": "fifo", "task_types": ["scrape"]},
    }
    body = (await api.post("/api/tasks/exchange", json=exchange)).json()
    assert body["applied"] == sorted([a["id"], b["id"], c["id"]])
    # The released task may be claimed again at once (SQLite applies outcomes before the
    # claim) or by the next claim (PostgreSQL claims in the same statement's snapshot).
    claimed = sorted(task["target_id"] for task in body["tasks"])
    assert claimed in (["c", "d", "e"], ["d", "e"])
    assert all(task["status"] == "processing" for task in body["tasks"])

    after = {t: await get(api, task["id"]) for t, task in zip("abc", (a, b, c), strict=True)}
    assert (after["a"]["status"], after["a"]["result"]) == ("completed", [1])
    assert (after["b"]["status"], after["b"]["error"]) == ("retry_scheduled", "bad")
    assert after["c"]["retry_count"] == 0, "a release spends no attempt"
    assert after["c"]["status"] in ("pending", "processing")

    # The answer was lost: the same outcomes again apply nothing new, and say applied.
    again = {"worker_id": "w1", "finished": finished[:2]}
    history = await queue.get_job_history(a["id"])
    body = (await api.post("/api/tasks/exchange", json=again)).json()
    assert body["applied"] == sorted([a["id"], b["id"]])
    assert body["tasks"] == []
    assert await queue.get_job_history(a["id"]) == history


async def test_an_exchange_reads_the_jobs_it_fails_or_releases_in_one_query(
    api: httpx.AsyncClient, queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    for target in "abcdef":
        await enqueue(api, target)
    tasks = (await claim(api, limit=6))["tasks"]
    reads: list[list[int]] = []
    real_get_jobs = queue.get_jobs

    async def get_jobs(job_ids: Any) -> Any:
        reads.append(list(job_ids))
        return await real_get_jobs(reads[-1])

    async def get_job(job_id: int) -> None:
        raise AssertionError("an exchange reads no job on its own")

    monkeypatch.setattr(queue, "get_jobs", get_jobs)
    monkeypatch.setattr(queue, "get_job", get_job)
    kinds = ["failed", "released", "failed", "completed", "released", "completed"]
    finished = [
        {"id": t["id"], "lease_token": t["lease_token"], "outcome": kind, "error": "e"}
        for t, kind in zip(tasks, kinds, strict=True)
    ]
    body = (
        await api.post("/api/tasks/exchange", json={"worker_id": "w1", "finished": finished})
    ).json()
    assert body["applied"] == sorted(t["id"] for t in tasks)
    unfinished = [t["id"] for t, kind in zip(tasks, kinds, strict=True) if kind != "completed"]
    assert [ids for ids in reads if ids] == [unfinished]
    monkeypatch.undo()
    statuses = [(await get(api, t["id"]))["status"] for t in tasks]
    assert statuses == [
        "retry_scheduled",
        "pending",
        "retry_scheduled",
        "completed",
        "pending",
        "completed",
    ]

    # Repeated (their answer was lost): what applied before is read back in one query too.
    monkeypatch.setattr(queue, "get_jobs", get_jobs)
    monkeypatch.setattr(queue, "get_job", get_job)
    reads.clear()
    again = [item for item in finished if item["outcome"] != "released"]
    body = (
        await api.post("/api/tasks/exchange", json={"worker_id": "w1", "finished": again})
    ).json()
    assert body["applied"] == sorted(item["id"] for item in again)
    assert len([ids for ids in reads if ids]) == 2, reads


async def test_an_exchange_naming_a_task_twice_is_422_and_applies_nothing(
    api: httpx.AsyncClient,
) -> None:
    await enqueue(api, "twice")
    task = await claim(api)
    lease = {"id": task["id"], "lease_token": task["lease_token"]}
    finished = [{**lease, "outcome": "failed", "error": "e"}, {**lease, "outcome": "completed"}]
    response = await api.post("/api/tasks/exchange", json={"worker_id": "w1", "finished": finished})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "finished"]
    assert "at most once" in response.json()["detail"][0]["msg"]
    assert (await get(api, task["id"]))["status"] == "processing"


async def test_an_exchanged_result_too_large_to_keep_fails_the_attempt_not_the_batch(
    api: httpx.AsyncClient, queue: JobQueue
) -> None:
    await enqueue(api, "big")
    await enqueue(api, "small")
    big, small = (await claim(api, limit=2))["tasks"]
    huge = "x" * (queue.max_result_bytes + 1)
    finished = [
        {
            "id": big["id"],
            "lease_token": big["lease_token"],
            "outcome": "completed",
            "result": huge,
        },
        {"id": small["id"], "lease_token": small["lease_token"], "outcome": "completed"},
    ]
    body = (
        await api.post("/api/tasks/exchange", json={"worker_id": "w1", "finished": finished})
    ).json()
    assert body["applied"] == sorted([big["id"], small["id"]])
    stored = await get(api, big["id"])
    assert stored["status"] == "retry_scheduled"
    assert stored["error"].startswith("ValidationError: result is ")
    assert (await get(api, small["id"]))["status"] == "completed"


async def test_renew_extends_the_leases_still_held(
    api: httpx.AsyncClient, queue: JobQueue, clock: ManualClock
) -> None:
    await enqueue(api, "a")
    await enqueue(api, "b")
    a, b = (await claim(api, limit=2))["tasks"]
    clock.advance(100)
    leases = [
        {"id": a["id"], "lease_token": a["lease_token"]},
        {"id": b["id"], "lease_token": "lost"},
    ]
    response = await api.post("/api/tasks/renew", json={"worker_id": "w1", "leases": leases})
    assert response.json() == {
        "held": [a["id"]],
        "lease_expires_at": at(clock, LEASE),
        "lease_seconds": LEASE,
    }
    assert (await get(api, a["id"]))["lease_expires_at"] == at(clock, LEASE)
    assert (await get(api, b["id"]))["lease_expires_at"] == at(clock, LEASE - 100)


async def test_worker_heartbeat_registers_a_remote_worker_and_delete_forgets_it(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    beat = {
        "worker_id": "remote-1",
        "host": "box",
        "pid": 42,
        "started_at": clock.now() - 60,
        "heartbeat_interval": 5.0,
        "jobs_processed": 7,
        "jobs_failed": 1,
    }
    response = await api.post("/api/workers/heartbeat", json=beat)
    assert response.json() == {"status": "success", "state": "running", "lease_seconds": LEASE}
    workers = (await api.get("/api/workers", headers=READ)).json()["workers"]
    assert [(w["worker_id"], w["jobs_processed"], w["alive"]) for w in workers] == [
        ("remote-1", 7, True)
    ]
    assert workers[0]["last_heartbeat"] == at(clock)
    assert (await api.get("/api/stats", headers=READ)).json()["active_workers"] == 1

    response = await api.delete("/api/workers/remote-1")
    assert response.json() == {"status": "success"}
    assert (await api.get("/api/workers", headers=READ)).json() == {"workers": []}


# -- operator routes ---------------------------------------------------------------------


async def test_a_duplicate_enqueue_answers_200_with_the_active_task(
    api: httpx.AsyncClient,
) -> None:
    first = await enqueue(api, "same", params={"v": 1})
    again = await api.post(
        "/api/tasks", json={"type": "scrape", "target_id": "same"}, headers=ADMIN
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["params"] == {"v": 1}

    task = await claim(api)
    await api.post(f"/api/tasks/{task['id']}/complete", json={"worker_id": "w1"})
    fresh = await enqueue(api, "same")
    assert fresh["id"] != first["id"], "only an active task holds the pair"


async def test_enqueue_with_a_delay_or_run_at(api: httpx.AsyncClient, clock: ManualClock) -> None:
    delayed = await enqueue(api, "later", delay=30)
    assert delayed["run_at"] == at(clock, 30)
    when = datetime.fromtimestamp(clock.now(), UTC) + timedelta(hours=1)
    scheduled = await enqueue(api, "at", run_at=when.isoformat())
    assert scheduled["run_at"] == when.isoformat()
    response = await api.post("/api/tasks/claim", json={"worker_id": "w1"})
    assert response.status_code == 404
    clock.advance(30)
    assert (await claim(api))["id"] == delayed["id"]


async def test_retry_and_cancel(api: httpx.AsyncClient, clock: ManualClock) -> None:
    pending = await enqueue(api, "p")
    cancel = await api.post(f"/api/tasks/{pending['id']}/cancel", headers=ADMIN)
    assert (cancel.status_code, cancel.json()) == (200, {"status": "success"})
    again = await api.post(f"/api/tasks/{pending['id']}/cancel", headers=ADMIN)
    assert (again.status_code, again.json()["status"]) == (409, "cancelled")
    retry = await api.post(f"/api/tasks/{pending['id']}/retry", headers=ADMIN)
    assert retry.json() == {"status": "success"}
    assert (await get(api, pending["id"]))["status"] == "pending"
    not_failed = await api.post(f"/api/tasks/{pending['id']}/retry", headers=ADMIN)
    assert (not_failed.status_code, not_failed.json()["status"]) == (409, "pending")

    task = await claim(api)
    response = await api.post(f"/api/tasks/{task['id']}/cancel", headers=ADMIN)
    assert response.status_code == 409, "a running task is not cancelled"
    heartbeat = await api.post(f"/api/tasks/{task['id']}/heartbeat", json={"worker_id": "w1"})
    assert heartbeat.json()["cancelled"] is False

    for verb in ("retry", "cancel"):
        assert (await api.post(f"/api/tasks/12345/{verb}", headers=ADMIN)).status_code == 404


async def test_a_cancelled_task_says_so_to_its_worker(api: httpx.AsyncClient) -> None:
    task = await enqueue(api, "c")
    await api.post(f"/api/tasks/{task['id']}/cancel", headers=ADMIN)
    response = await api.post(f"/api/tasks/{task['id']}/heartbeat", json={"worker_id": "w1"})
    assert response.status_code == 409
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancelled"] is True


async def test_list_stats_and_metrics(api: httpx.AsyncClient, clock: ManualClock) -> None:
    for target in ["a", "b", "c"]:
        await enqueue(api, target)
    await enqueue(api, "m", type="mail")
    task = await claim(api)
    clock.advance(2)
    await api.post(f"/api/tasks/{task['id']}/complete", json={"worker_id": "w1"})

    listed = await api.get("/api/tasks", params={"status": ["pending", "completed"]}, headers=READ)
    assert len(listed.json()["tasks"]) == 4
    typed = await api.get("/api/tasks", params={"type": "mail", "limit": 5}, headers=READ)
    assert [t["target_id"] for t in typed.json()["tasks"]] == ["m"]
    bad = await api.get("/api/tasks", params={"status": "nope"}, headers=READ)
    assert bad.status_code == 422

    stats = (await api.get("/api/stats", headers=READ)).json()
    assert (stats["total_jobs"], stats["completed_jobs"], stats["pending_jobs"]) == (4, 1, 3)
    metrics = (await api.get("/api/metrics", params={"window": 60}, headers=READ)).json()
    assert metrics["window_seconds"] == 60
    assert metrics["completed_in_window"] == 1
    assert metrics["by_type"]["scrape"]["processing_p50"] == 2.0
    for window in ("0", "-1", "inf", "nan", "x"):
        response = await api.get("/api/metrics", params={"window": window}, headers=READ)
        assert response.status_code == 422, window


# -- authentication ----------------------------------------------------------------------


async def test_every_route_but_health_needs_a_valid_token(api: httpx.AsyncClient) -> None:
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "x"},
    ):
        response = await api.get("/api/stats", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        response = await api.post("/api/tasks/claim", json={"worker_id": "w"}, headers=headers)
        assert response.status_code == 401
    response = await api.get("/api/stats", headers={"Authorization": "Basic YWRtOmFkbQ=="})
    assert response.status_code == 401


async def test_scopes_admit_their_routes_only(api: httpx.AsyncClient) -> None:
    task = await enqueue(api, "s")
    claim_body = {"worker_id": "w", "limit": 1}
    beat = {"worker_id": "w", "host": "h", "pid": 1, "started_at": 0, "heartbeat_interval": 5}
    routes: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
        ("POST", "/api/tasks/claim", claim_body, {"adm", "wrk"}),
        ("POST", "/api/tasks/wait", {"since": 0}, {"adm", "wrk"}),
        ("POST", "/api/tasks/exchange", {"worker_id": "w"}, {"adm", "wrk"}),
        ("POST", "/api/tasks/renew", {"worker_id": "w", "leases": []}, {"adm", "wrk"}),
        ("DELETE", "/api/workers/w", None, {"adm", "wrk"}),
        ("POST", f"/api/tasks/{task['id']}/complete", {"worker_id": "w"}, {"adm", "wrk"}),
        ("POST", f"/api/tasks/{task['id']}/fail", {"worker_id": "w", "error": "e"}, {"adm", "wrk"}),
        ("POST", f"/api/tasks/{task['id']}/heartbeat", {"worker_id": "w"}, {"adm", "wrk"}),
        ("POST", "/api/workers/heartbeat", beat, {"adm", "wrk"}),
        ("GET", f"/api/tasks/{task['id']}", None, {"adm", "wrk", "rd"}),
        ("GET", "/api/stats", None, {"adm", "rd"}),
        ("GET", "/api/tasks", None, {"adm", "rd"}),
        ("GET", "/api/tasks/failed", None, {"adm", "rd"}),
        ("GET", "/api/workers", None, {"adm", "rd"}),
        ("GET", "/api/metrics", None, {"adm", "rd"}),
        ("POST", "/api/tasks", {"type": "t", "target_id": "new"}, {"adm"}),
        ("POST", f"/api/tasks/{task['id']}/cancel", None, {"adm"}),
        ("POST", f"/api/tasks/{task['id']}/retry", None, {"adm"}),
    ]
    for method, url, body, allowed in routes:
        for token in ("rd", "wrk", "adm"):
            headers = {"Authorization": f"Bearer {token}"}
            response = await api.request(method, url, json=body, headers=headers)
            if token in allowed:
                assert response.status_code not in (401, 403), (method, url, token)
            else:
                assert response.status_code == 403, (method, url, token, response.text)


async def test_a_read_token_sees_no_lease_token(api: httpx.AsyncClient) -> None:
    await enqueue(api, "secret")
    task = await claim(api)
    assert task["lease_token"]
    assert (await api.get(f"/api/tasks/{task['id']}", headers=READ)).json()["lease_token"] is None
    listed = (await api.get("/api/tasks", headers=READ)).json()["tasks"]
    assert listed[0]["lease_token"] is None
    assert (await api.get(f"/api/tasks/{task['id']}", headers=ADMIN)).json()["lease_token"]


async def test_no_token_refuses_to_build_the_app_unless_insecure(
    queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QUEUE_API_TOKEN", raising=False)
    monkeypatch.delenv("QUEUE_API_TOKENS", raising=False)
    with pytest.raises(ConfigurationError, match="no API token configured"):
        create_app(queue)
    app = create_app(queue, insecure=True, sweep=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        assert (await c.get("/api/stats")).status_code == 200

    monkeypatch.setenv("QUEUE_API_TOKENS", "read:r1, worker:w1")
    app = create_app(queue, sweep=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        assert (await c.get("/api/stats")).status_code == 401
        assert (await c.get("/api/stats", headers={"Authorization": "Bearer r1"})).is_success


# -- bad input ---------------------------------------------------------------------------


async def test_bad_input_says_which_field_and_why_and_writes_nothing(
    api: httpx.AsyncClient, queue: JobQueue
) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"type": "t", "target_id": "x", "priority": 11}, "priority", "between 1"),
        ({"type": "t", "target_id": "x", "priority": True}, "priority", "integer"),
        ({"type": "t", "target_id": "x", "priority": "3"}, "priority", "integer"),
        ({"type": "t", "target_id": "x" * 256}, "target_id", "limit is 255"),
        ({"type": " ", "target_id": "x"}, "type", "must not be empty"),
        ({"type": "t", "target_id": "x", "max_retries": -1}, "max_retries", "between 0"),
        ({"type": "t", "target_id": "x", "params": [1]}, "params", "dictionary"),
        ({"type": "t", "target_id": "x", "delay": -1}, "delay", "greater than"),
        ({"type": "t", "target_id": "x", "run_at": "2030-01-01T00:00:00"}, "run_at", "aware"),
        ({"type": "t", "target_id": "x", "delay": 1, "run_at": "2030-01-01T00:00:00Z"}, "", "not both"),
        ({"type": "t", "target_id": "x\x00"}, "target_id", "NUL"),
        ({"target_id": "x"}, "type", "required"),
    ]  # fmt: skip
    for body, field, message in cases:
        response = await api.post("/api/tasks", json=body, headers=ADMIN)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["detail"][0]
        assert error["loc"][: 2 if field else 1] == (["body", field] if field else ["body"])
        assert message in error["msg"], (body, error)
    big = {"type": "t", "target_id": "x", "params": {"k": "v" * queue.max_result_bytes}}
    response = await api.post("/api/tasks", json=big, headers=ADMIN)
    assert response.json()["detail"][0]["loc"] == ["body", "params"]

    response = await api.post("/api/tasks/claim", json={"worker_id": "w", "limit": 0})
    assert response.json()["detail"][0]["loc"] == ["body", "limit"]
    for number in (b"NaN", b"Infinity"):
        response = await api.post(
            "/api/tasks/claim",
            content=b'{"worker_id": "w", "wait": ' + number + b"}",
            headers={"content-type": "application/json"},
        )
        assert response.json()["detail"][0]["loc"] == ["body", "wait"], number
    for wait in (True, "1.5"):
        response = await api.post("/api/tasks/claim", json={"worker_id": "w", "wait": wait})
        assert response.json()["detail"][0]["loc"] == ["body", "wait"], wait
    response = await api.post("/api/tasks/claim", json={"worker_id": "w", "task_types": [""]})
    assert response.status_code == 422
    assert (await queue.get_queue_stats()).total_jobs == 0


async def test_a_result_too_large_is_refused_with_422_and_the_task_stays_held(
    api: httpx.AsyncClient, queue: JobQueue
) -> None:
    await enqueue(api, "r")
    task = await claim(api)
    url = f"/api/tasks/{task['id']}/complete"
    huge = {"worker_id": "w1", "result": "x" * queue.max_result_bytes}
    response = await api.post(url, json=huge)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "result"]
    deep: Any = []
    for _ in range(200):
        deep = [deep]
    response = await api.post(url, json={"worker_id": "w1", "result": deep})
    assert response.status_code == 422
    response = await api.post(
        url, content=b"[" * 2_000_000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert (await get(api, task["id"]))["status"] == "processing"


async def test_a_body_that_is_not_json_is_400_and_one_over_the_cap_413(
    api: httpx.AsyncClient, queue: JobQueue
) -> None:
    json_type = {"content-type": "application/json"}
    for content in (b"{not json", b'{"type": "t",', b"\xff\xfe"):
        response = await api.post("/api/tasks", content=content, headers={**ADMIN, **json_type})
        assert response.status_code == 400, content
    response = await api.post("/api/tasks", content=b"type=t", headers=ADMIN)
    assert response.status_code == 400

    body = b'{"type": "t", "target_id": "x", "params": {"k": "' + b"v" * (1 << 20) + b'"}}'
    response = await api.post("/api/tasks", content=body, headers={**ADMIN, **json_type})
    assert response.status_code == 413

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100_000

    response = await api.post("/api/tasks", content=chunked(), headers={**ADMIN, **json_type})
    assert response.status_code == 413
    assert (await queue.get_queue_stats()).total_jobs == 0


async def test_unknown_fields_are_ignored(api: httpx.AsyncClient) -> None:
    body = {"type": "t", "target_id": "x", "created_by": "seed-client", "status": "pending"}
    response = await api.post("/api/tasks", json=body, headers=ADMIN)
    assert response.status_code == 201
    response = await api.post("/api/tasks/claim", json={"worker_id": "w", "hostname": "h"})
    assert response.status_code == 200


async def test_the_router_in_an_app_of_ones_own(queue: JobQueue, clock: ManualClock) -> None:
    from contextlib import asynccontextmanager

    from asyncqueue.server import TokenAuth, create_router, install_exception_handlers
    from asyncqueue.server import lease_sweeper as sweeper

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with sweeper(queue):
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(create_router(queue, TokenAuth(TOKENS), max_body_bytes=1000))
    install_exception_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://own", headers=WORKER) as api,
    ):
        job_id = await queue.enqueue("scrape", "mine")
        assert (await claim(api))["id"] == job_id
        response = await api.post(
            "/api/tasks/claim", content=b"{", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        response = await api.post("/api/tasks/claim", json={"worker_id": "w" * 1000})
        assert response.status_code == 413
        assert (await api.get("/api/stats")).status_code == 403
