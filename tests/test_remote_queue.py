"""RemoteQueue's own rules, against a scripted transport: what it sends, keeps and raises."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from asyncqueue import (
    ConfigurationError,
    JobStatus,
    ManualClock,
    QueueWorker,
    RemoteAuthError,
    RemoteError,
    RemoteQueue,
    RemoteUnavailableError,
    WorkerError,
)
from asyncqueue.job import ClaimedJob

Handler = Callable[[httpx.Request], httpx.Response]


def task(job_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "type": "t",
        "target_id": f"x{job_id}",
        "status": "processing",
        "params": {"n": job_id},
        "priority": 5,
        "retry_count": 0,
        "max_retries": 3,
        "lease_token": f"tok{job_id}",
        "worker_id": "w",
        **fields,
    }


class Server:
    """Answers from a script and records every request body."""

    def __init__(self, *answers: Handler | httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    def queue(self, **kwargs: Any) -> RemoteQueue:
        return RemoteQueue(
            "http://server.test/api",
            token="secret",
            transport=httpx.MockTransport(self),
            **kwargs,
        )


def exchange_answer(
    applied: list[int], tasks: list[dict[str, Any]], seq: int = 0
) -> httpx.Response:
    return httpx.Response(200, json={"applied": applied, "tasks": tasks, "seq": seq})


def claimed(job_id: int) -> ClaimedJob:
    return ClaimedJob(job_id, "t", f"x{job_id}", {}, 5, 0, 3, f"tok{job_id}", "w")


async def test_an_exchange_sends_outcomes_and_the_claim_and_reads_the_tasks() -> None:
    server = Server(exchange_answer([1, 2], [task(7)], seq=4))
    async with server.queue() as rq:
        done = rq.outcome(claimed(1), None, result_json='{"a":1}')
        failed = rq.outcome(claimed(2), "ValueError: x")
        applied, jobs = await rq.finish_and_claim(
            [done, failed], worker_id="w", limit=5, job_types=("t",)
        )
    assert applied == {1, 2}
    assert [(j.id, j.metadata, j.lease_token) for j in jobs] == [(7, {"n": 7}, "tok7")]
    method, path, body = server.requests[0]
    assert (method, path) == ("POST", "/api/tasks/exchange")
    assert body == {
        "worker_id": "w",
        "finished": [
            {"id": 1, "lease_token": "tok1", "outcome": "completed", "result": {"a": 1}},
            {"id": 2, "lease_token": "tok2", "outcome": "failed", "error": "ValueError: x"},
        ],
        "claim": {"limit": 5, "task_types": ["t"], "strategy": "priority"},
    }
    assert failed.status is JobStatus.RETRY_SCHEDULED  # as the server will decide


async def test_outcomes_are_kept_while_the_server_is_unreachable_and_sent_later() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    server = Server(refuse)
    async with server.queue(reconnect_seconds=0.2) as rq:
        with pytest.raises(RemoteUnavailableError):
            await rq.finish_and_claim([rq.outcome(claimed(1), None)], worker_id="w", limit=0)
        assert len(server.requests) > 1, "retried with backoff before giving up"
        server.answers = [exchange_answer([1, 2], [])]
        applied, _ = await rq.finish_and_claim(
            [rq.outcome(claimed(2), None)], worker_id="w", limit=0
        )
    assert applied == {1, 2}
    assert [o["id"] for o in server.requests[-1][2]["finished"]] == [1, 2]
    # Every try after the first may follow a lost answer: it names the leases held.
    assert "holding" not in server.requests[0][2]
    assert all(body["holding"] == [] for _, _, body in server.requests[1:])


async def test_a_503_is_retried_and_a_later_200_is_taken() -> None:
    server = Server(
        httpx.Response(503, json={"detail": "starting"}), exchange_answer([], [task(3)])
    )
    async with server.queue() as rq:
        _, jobs = await rq.finish_and_claim((), worker_id="w", limit=1)
    assert [j.id for j in jobs] == [3]
    assert len(server.requests) == 2


async def test_a_refused_exchange_raises_and_drops_what_it_carried() -> None:
    server = Server(httpx.Response(422, json={"detail": "bad"}), exchange_answer([], []))
    async with server.queue() as rq:
        with pytest.raises(RemoteError) as raised:
            await rq.finish_and_claim([rq.outcome(claimed(1), None)], worker_id="w", limit=0)
        assert raised.value.status == 422
        await rq.finish_and_claim((), worker_id="w", limit=1)
    assert server.requests[-1][2]["finished"] == []


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_token_raises_remote_auth_error(status: int) -> None:
    server = Server(httpx.Response(status, json={"detail": "no"}))
    async with server.queue() as rq:
        with pytest.raises(RemoteAuthError):
            await rq.finish_and_claim((), worker_id="w", limit=1)


async def test_a_worker_with_a_refused_token_stops_with_worker_error() -> None:
    class Never(QueueWorker):
        async def process_job(
            self, job_type: str, target_id: str, metadata: dict[str, Any]
        ) -> bool:
            raise AssertionError("no job should run")

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/workers/heartbeat":
            return httpx.Response(200, json={"status": "success"})
        return httpx.Response(401, json={"detail": "wrong token"})

    server = Server(answer)
    async with server.queue() as rq:
        with pytest.raises(WorkerError, match="401"):
            await Never(rq).start()


async def test_the_bearer_token_goes_with_every_request_and_waits_pass_the_seq() -> None:
    server = Server(exchange_answer([], [], seq=9), httpx.Response(200, json={"seq": 10}))
    async with server.queue(clock=ManualClock()) as rq:
        await rq.finish_and_claim((), worker_id="w", limit=1)
        await rq.wait_for_work(0.5, ("t",))
    assert server.requests[1] == (
        "POST",
        "/api/tasks/wait",
        {"since": 9, "timeout": 0.5, "task_types": ["t"]},
    )


@pytest.mark.parametrize(
    ("last", "requests"),
    [
        ({"seq": 3, "due": True}, 3),  # a task came due
        ({"seq": 4, "due": False}, 3),  # something was enqueued
    ],
)
async def test_a_wait_with_nothing_new_waits_again_rather_than_claim(
    last: dict[str, Any], requests: int
) -> None:
    nothing = httpx.Response(200, json={"seq": 3, "due": False})
    server = Server(
        exchange_answer([], [], seq=3), nothing, nothing, httpx.Response(200, json=last)
    )
    async with server.queue(clock=ManualClock()) as rq:
        await rq.finish_and_claim((), worker_id="w", limit=1)
        await rq.wait_for_work(0.5, None)
    waits = [path for _, path, _ in server.requests[1:]]
    assert waits == ["/api/tasks/wait"] * requests, "an idle remote worker claims nothing"


async def test_a_wait_on_an_unreachable_server_sleeps_instead_of_raising() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    clock = ManualClock()
    async with Server(refuse).queue(clock=clock, reconnect_seconds=0.1) as rq:
        task = asyncio.ensure_future(rq.wait_for_work(3.0, None))
        async with asyncio.timeout(10):
            while not clock._sleepers:
                await asyncio.sleep(0.01)
        assert not task.done(), "an unreachable server makes the wait sleep, not raise"
        clock.advance(3.0)
        await asyncio.wait_for(task, 10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"api_url": "ftp://x/api"}, "api_url"),
        ({"lease_seconds": 0}, "lease_seconds"),
        ({"reconnect_seconds": -1}, "reconnect_seconds"),
        ({"timeout": float("nan")}, "timeout"),
        ({"max_result_bytes": True}, "max_result_bytes"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RemoteQueue(**kwargs)


def test_the_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMANAGER_API_URL", "http://tm.example:8000/api/")
    monkeypatch.setenv("QUEUE_API_TOKEN", "t0k")
    monkeypatch.setenv("QUEUE_JOB_TIMEOUT_MINUTES", "2")
    rq = RemoteQueue()
    assert rq.api_url == "http://tm.example:8000/api"
    assert rq.lease_seconds == 120.0
    assert rq._token == "t0k"


async def test_a_result_goes_out_as_encoded_and_an_error_as_text_the_server_can_store() -> None:
    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        assert request.headers["content-type"] == "application/json"
        return exchange_answer([1, 2], [])

    server = Server(answer)
    async with server.queue() as rq:
        outcomes = [
            rq.outcome(claimed(1), None, result_json='{"n":1.50,"s":"\u00e9"}'),
            rq.outcome(claimed(2), "ValueError: caf\u00e9 \udcff"),
        ]
        await rq.finish_and_claim(outcomes, worker_id="w", limit=0)
    # 1.50 would read back as 1.5 had the text been decoded and encoded again.
    assert b'"result":{"n":1.50,"s":"\xc3\xa9"}}' in sent[0]
    assert server.requests[0][2]["finished"] == [
        {"id": 1, "lease_token": "tok1", "outcome": "completed", "result": {"n": 1.5, "s": "é"}},
        {"id": 2, "lease_token": "tok2", "outcome": "failed", "error": "ValueError: café \\udcff"},
    ]
