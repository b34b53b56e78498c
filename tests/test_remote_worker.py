"""The same QueueWorker subclass on a RemoteQueue: real HTTP to a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from remote_support import (
    REPO_ROOT,
    TOKEN,
    ServeProcess,
    environment,
    free_port,
    live_server,
)
from support import Recording, WatchedClock, job_of, wait_until

from asyncqueue import (
    JobQueue,
    JobResult,
    JobStatus,
    ManualClock,
    QueueWorker,
    RemoteQueue,
    RemoteUnavailableError,
)

pytestmark = pytest.mark.timeout(120)


class Producing(QueueWorker):
    """Keeps a result for "ok" jobs, fails "bad" ones, gates "gated" ones on an event."""

    gate: asyncio.Event | None = None

    def __init__(self, queue: Any, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.ran: list[str] = []
        self.started = asyncio.Event()

    async def process_job(
        self, job_type: str, target_id: str, metadata: dict[str, Any]
    ) -> bool | JobResult:
        self.ran.append(target_id)
        self.started.set()
        if job_type == "gated":
            assert self.gate is not None
            await self.gate.wait()
        if job_type == "bad":
            raise ValueError(f"{target_id} is bad")
        return JobResult({"target": target_id, "n": metadata.get("n")})


def remote(url: str, **kwargs: Any) -> RemoteQueue:
    return RemoteQueue(url, token=TOKEN, **kwargs)


async def test_the_same_subclass_runs_remotely_and_results_are_stored(db_path: Path) -> None:
    async with JobQueue(db_path, max_retries=0) as queue:
        ok = [await queue.enqueue("ok", f"t{i}", metadata={"n": i}) for i in range(30)]
        bad = await queue.enqueue("bad", "b")
        async with live_server(queue) as url, remote(url) as rq:
            worker = Producing(rq, concurrency=4)
            assert await worker.run_until_idle() == 31
        assert (worker.jobs_processed, worker.jobs_failed) == (30, 1)
        for i, job_id in enumerate(ok):
            job = await queue.get_job(job_id)
            assert job is not None
            assert job.status is JobStatus.COMPLETED
            assert job.result == {"target": f"t{i}", "n": i}
            assert job.worker_id == worker.worker_id
        failed = await queue.get_job(bad)
        assert failed is not None
        assert failed.status is JobStatus.FAILED
        assert failed.error_message == "ValueError: b is bad"
        assert (await queue.get_queue_stats()).active_workers == 0  # unregistered on stop


async def test_a_failed_remote_attempt_follows_the_servers_retry_policy(db_path: Path) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    async with JobQueue(db_path, clock=clock, retry_base_delay=5.0, max_retries=1) as queue:
        job_id = await queue.enqueue("bad", "x")
        async with live_server(queue) as url, remote(url) as rq:
            assert await Producing(rq).run_until_idle() == 1
            job = await queue.get_job(job_id)
            assert job is not None
            assert job.status is JobStatus.RETRY_SCHEDULED
            assert job.run_at.timestamp() == clock.now() + 5.0  # the server's backoff
            assert await Producing(rq).run_until_idle() == 0  # not due yet
            clock.advance(5.0)
            assert await Producing(rq).run_until_idle() == 1
        job = await queue.get_job(job_id)
        assert job is not None
        assert (job.status, job.retry_count, job.attempts) == (JobStatus.FAILED, 1, 2)


class Sharing(Recording):
    """Jobs of a few milliseconds: with no-op jobs the local worker, first to start,
    often drained the queue before the remote one claimed anything."""

    async def process_job(self, job_type: str, target_id: str, metadata: dict[str, Any]) -> bool:
        await asyncio.sleep(0.002)
        return await super().process_job(job_type, target_id, metadata)


async def test_a_remote_and_a_local_worker_on_one_queue_run_each_job_once(db_path: Path) -> None:
    async with JobQueue(db_path) as queue:
        await queue.enqueue_many([{"job_type": "t", "target_id": f"j{i}"} for i in range(600)])
        async with live_server(queue) as url, remote(url) as rq:
            far = Sharing(rq, concurrency=8)  # type: ignore[arg-type]
            near = Sharing(queue, concurrency=8)
            tasks = [asyncio.create_task(w.start()) for w in (far, near)]

            async def drained() -> bool:
                return (await queue.get_queue_stats()).completed_jobs == 600

            await wait_until(drained, "every job to complete")
            await asyncio.gather(far.stop(), near.stop())
            await asyncio.gather(*tasks)
        counts = Counter(far.ran + near.ran)
        assert far.ran, "the remote worker ran jobs too"
        assert near.ran, "the local worker ran jobs too"
        assert len(counts) == 600
        assert set(counts.values()) == {1}
        for job in await queue.list_jobs(limit=600):
            assert (job.status, job.attempts) == (JobStatus.COMPLETED, 1)


async def test_a_stop_releases_the_running_job_without_spending_an_attempt(
    db_path: Path,
) -> None:
    async with JobQueue(db_path) as queue:
        job_id = await queue.enqueue("gated", "g")
        async with live_server(queue) as url, remote(url) as rq:
            worker = Producing(rq)
            worker.gate = asyncio.Event()  # never set: the job runs until stopped
            running = asyncio.create_task(worker.start())
            await asyncio.wait_for(worker.started.wait(), 10)
            await worker.stop(grace_period=0)
            await running
        job = await queue.get_job(job_id)
        assert job is not None
        assert (job.status, job.retry_count, job.worker_id) == (JobStatus.PENDING, 0, None)


async def test_a_result_waits_out_a_server_restart_and_is_accepted_after_it(
    db_path: Path,
) -> None:
    port = free_port()
    async with JobQueue(db_path) as queue:
        job_id = await queue.enqueue("gated", "g")
    rq = remote(f"http://127.0.0.1:{port}/api", reconnect_seconds=60)
    worker = Producing(rq)
    worker.gate = asyncio.Event()
    async with rq:
        async with JobQueue(db_path) as first, live_server(first, port):
            running = asyncio.create_task(worker.start())
            await asyncio.wait_for(worker.started.wait(), 10)
        # The server is gone; the job finishes and its result cannot be delivered yet.
        worker.gate.set()
        await asyncio.sleep(0.3)
        async with JobQueue(db_path) as second, live_server(second, port):

            async def completed() -> bool:
                job = await second.get_job(job_id)
                return job is not None and job.status is JobStatus.COMPLETED

            await wait_until(completed, "the result to arrive after the restart")
            await worker.stop()
            await running
            job = await second.get_job(job_id)
            assert job is not None
            assert (job.attempts, job.result) == (1, {"target": "g", "n": None})
    assert worker.ran == ["g"]


async def test_an_unreachable_server_fails_a_call_after_reconnect_seconds() -> None:
    async with remote(f"http://127.0.0.1:{free_port()}/api", reconnect_seconds=0.3) as rq:
        started = time.monotonic()
        with pytest.raises(RemoteUnavailableError, match="could not be reached"):
            await rq.finish_and_claim((), worker_id="w", limit=1)
        assert time.monotonic() - started < 10


def _cli_worker(url: str, tmp_path: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    with (tmp_path / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "asyncqueue", "worker", "--url", url, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment(QUEUE_API_TOKEN=TOKEN),
            cwd=tmp_path,
        )


def _completed(db: Path) -> int:
    async def count() -> int:
        async with JobQueue(db) as queue:
            return (await queue.get_queue_stats()).completed_jobs

    return asyncio.run(count())


def test_the_cli_remote_worker_runs_jobs_and_exits_0_on_sigterm(
    db_path: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.log"

    async def fill() -> None:
        async with JobQueue(db_path) as queue:
            for i in range(20):
                await queue.enqueue("t", f"j{i}", metadata={"log": str(runs)})

    asyncio.run(fill())
    with ServeProcess(db_path, tmp_path / "server.log") as server:
        worker = _cli_worker(server.api_url, tmp_path, "w", "cli_workers:LoggingWorker")
        try:
            deadline = time.monotonic() + 30
            while _completed(db_path) < 20:
                assert worker.poll() is None, (tmp_path / "w.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "w.log").read_text()
                time.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0, (tmp_path / "w.log").read_text()
        finally:
            if worker.poll() is None:
                worker.kill()
    assert sorted(runs.read_text().split()) == sorted(f"j{i}" for i in range(20))
    assert "stopped after 20 jobs" in (tmp_path / "w.log").read_text()


def test_eight_remote_workers_and_a_server_restart_run_every_task_exactly_once(
    db_path: Path, tmp_path: Path
) -> None:
    total = 1200
    runs = tmp_path / "runs.log"

    async def fill() -> None:
        async with JobQueue(db_path) as queue:
            items = [
                {
                    "job_type": "t",
                    "target_id": f"j{i}",
                    "metadata": {"log": str(runs), "seconds": 0.004},
                }
                for i in range(total)
            ]
            await queue.enqueue_many(items)

    asyncio.run(fill())
    server = ServeProcess(db_path, tmp_path / "server.log")
    workers: list[subprocess.Popen[bytes]] = []
    with server:
        for k in range(8):
            workers.append(
                _cli_worker(
                    server.api_url,
                    tmp_path,
                    f"w{k}",
                    "cli_workers:LoggingWorker",
                    "--concurrency=4",
                    "--poll-interval=0.2",
                )
            )
        try:
            deadline = time.monotonic() + 60
            while _completed(db_path) < total // 4:
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.02)
            assert server.stop() == 0, server.output()
            time.sleep(0.5)  # workers finish jobs and find the server gone
            server.start()
            while _completed(db_path) < total:
                assert time.monotonic() < deadline + 60, server.output()
                assert all(w.poll() is None for w in workers)
                time.sleep(0.05)
            for w in workers:
                w.send_signal(signal.SIGTERM)
            codes = [w.wait(30) for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
    logs = "".join((tmp_path / f"w{k}.log").read_text() for k in range(8))
    assert codes == [0] * 8, logs[-4000:]
    counts = Counter(runs.read_text().split())
    assert len(counts) == total
    assert set(counts.values()) == {1}, [t for t, n in counts.items() if n > 1][:10]

    async def check() -> None:
        async with JobQueue(db_path) as queue:
            jobs = await queue.list_jobs(limit=total)
            assert {(job.status, job.attempts) for job in jobs} == {(JobStatus.COMPLETED, 1)}
            assert all(job.result is not None for job in jobs)

    asyncio.run(check())
    # The whole log of both server runs (``output()`` keeps only its end): every request.
    statuses = _statuses(server.log.read_text(errors="replace"))
    assert statuses.count("200") >= total // 100, "the server logged its requests"
    assert not [s for s in statuses if s.startswith("5")], "no 5xx answers"
    assert "remote.retrying" in logs, "the workers saw the restart and reconnected"


def _statuses(server_log: str) -> list[str]:
    """The status of every request the server logged."""
    return [
        part.split("=", 1)[1]
        for line in server_log.splitlines()
        for part in line.split()
        if part.startswith("status=")
    ]


class LosingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, but the answer to the next ``lose`` exchanges is lost after the server
    acted on them (a network cut, a proxy timeout)."""

    def __init__(self, lose: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lose = lose

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/tasks/exchange") and self.lose:
            self.lose -= 1
            await response.aread()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_jobs_claimed_by_an_exchange_whose_answer_was_lost_go_back_to_pending(
    db_path: Path,
) -> None:
    async with JobQueue(db_path) as queue:
        known = await queue.enqueue("t", "known", priority=1)
        orphan = await queue.enqueue("t", "orphan", priority=2)
        async with live_server(queue) as url:
            transport = LosingTransport(lose=0)
            async with remote(url, transport=transport) as rq:
                _, first = await rq.finish_and_claim((), worker_id="w", limit=1)
                assert [job.id for job in first] == [known]
                transport.lose = 1
                _, second = await rq.finish_and_claim((), worker_id="w", limit=1)
                # The first try claimed the orphan and its answer was lost; the retry named
                # the leases this client knows, and the server gave the orphan back.
                assert second == []
                lost = await queue.get_job(orphan)
                assert lost is not None
                assert (lost.status, lost.retry_count, lost.worker_id) == (
                    JobStatus.PENDING,
                    0,
                    None,
                )
                still = await queue.get_job(known)
                assert still is not None
                assert (still.status, still.lease_token) == (
                    JobStatus.PROCESSING,
                    first[0].lease_token,
                )
                _, third = await rq.finish_and_claim(
                    [rq.outcome(first[0], None)], worker_id="w", limit=1
                )
                assert [job.id for job in third] == [orphan]
        history = [event.event.value for event in await queue.get_job_history(orphan)]
        assert history == ["enqueued", "claimed", "released", "claimed"]


async def test_heartbeats_keep_a_long_remote_job_past_many_lease_lengths(db_path: Path) -> None:
    clock = WatchedClock(start=1_800_000_000.0)
    # A 3 s lease: the server sweeps every second, the worker renews every 0.75 s.
    async with JobQueue(db_path, clock=clock, job_timeout_minutes=0.05) as queue:
        job_id = await queue.enqueue("gated", "long")
        async with live_server(queue) as url, remote(url, clock=clock, lease_seconds=3) as rq:
            worker = Producing(rq, heartbeat_interval=0.75)
            worker.gate = asyncio.Event()
            running = asyncio.create_task(worker.start())
            await asyncio.wait_for(worker.started.wait(), 10)
            token = (await job_of(queue, job_id)).lease_token
            for _ in range(12):  # nine seconds: three leases
                await clock.wait_for_sleeper(0.75)  # the worker waits for its next heartbeat
                clock.advance(0.75)

                async def renewed() -> bool:
                    job = await job_of(queue, job_id)
                    assert job.lease_expires_at is not None
                    return job.lease_expires_at.timestamp() >= clock.now() + 3.0

                await wait_until(renewed, "the worker to renew its lease")
                await queue.recover_stale_jobs()  # what the sweeper does: nothing to take
            held = await job_of(queue, job_id)
            assert (held.status, held.lease_token) == (JobStatus.PROCESSING, token)
            worker.gate.set()

            async def completed() -> bool:
                return (await job_of(queue, job_id)).status is JobStatus.COMPLETED

            await wait_until(completed, "the job to complete")
            await worker.stop()
            await running
        job = await job_of(queue, job_id)
        assert (job.attempts, job.retry_count) == (1, 0)


def test_the_cli_remote_worker_exits_1_when_the_server_stays_unreachable(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    worker = _cli_worker(
        url, tmp_path, "w", "cli_workers:QuickWorker", "--reconnect-seconds", "0.5"
    )
    try:
        code = worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
    output = (tmp_path / "w.log").read_text()
    assert code == 1, output
    assert "could not be reached for 0.5s" in output


def test_the_remote_worker_example_runs_against_a_real_server(
    db_path: Path, tmp_path: Path
) -> None:
    async def fill() -> None:
        async with JobQueue(db_path) as queue:
            for i in range(5):
                await queue.enqueue(
                    "PrismQ.YouTube.ScrapeShorts", f"q{i}", metadata={"search_query": f"q{i}"}
                )

    asyncio.run(fill())
    with ServeProcess(db_path, tmp_path / "server.log") as server:
        done = subprocess.run(
            [sys.executable, str(REPO_ROOT / "examples" / "remote_worker.py"), server.api_url],
            env=environment(QUEUE_API_TOKEN=TOKEN, MAX_RUNS="5"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped after 5 tasks (0 failed attempts)" in done.stdout

    async def check() -> None:
        async with JobQueue(db_path) as queue:
            for job in await queue.list_jobs():
                assert job.status is JobStatus.COMPLETED
                assert job.result == {
                    "search_query": job.target_id,
                    "shorts": [],
                    "total_found": 0,
                }

    asyncio.run(check())


async def test_the_server_takes_back_a_silent_workers_lease_and_fences_its_late_complete(
    db_path: Path,
) -> None:
    # A 1.2 s lease: the server's own sweeper (every 0.4 s) takes the task back; nobody
    # calls recover_stale_jobs here.
    async with JobQueue(db_path, job_timeout_minutes=0.02, retry_base_delay=0.0) as queue:
        job_id = await queue.enqueue("t", "silent")
        async with (
            live_server(queue) as url,
            httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        ):
            first = (await http.post(f"{url}/tasks/claim", json={"worker_id": "w1"})).json()
            assert first["id"] == job_id

            async def taken_back() -> bool:
                return (await job_of(queue, job_id)).status is not JobStatus.PROCESSING

            await wait_until(taken_back, "the server to take back the expired lease")
            second = (await http.post(f"{url}/tasks/claim", json={"worker_id": "w2"})).json()
            assert (second["id"], second["retry_count"]) == (job_id, 1), "the attempt counted"
            late = await http.post(
                f"{url}/tasks/{job_id}/complete",
                json={"worker_id": "w1", "result": "late", "lease_token": first["lease_token"]},
            )
            assert (late.status_code, late.json()["status"]) == (409, "processing")
            done = await http.post(
                f"{url}/tasks/{job_id}/complete",
                json={"worker_id": "w2", "result": "fresh", "lease_token": second["lease_token"]},
            )
            assert (done.status_code, done.json()) == (200, {"status": "success"})
            again = await http.post(
                f"{url}/tasks/{job_id}/complete", json={"worker_id": "w1", "result": "late"}
            )
            assert (again.status_code, again.json()["status"]) == (409, "completed")
        job = await job_of(queue, job_id)
        assert (job.status, job.result, job.worker_id, job.attempts) == (
            JobStatus.COMPLETED,
            "fresh",
            "w2",
            2,
        )


async def test_a_remote_worker_renews_by_the_lease_the_server_gives(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QUEUE_JOB_TIMEOUT_MINUTES", raising=False)
    queue = JobQueue(db_path, job_timeout_minutes=0.05)  # a 3 s lease
    async with queue, live_server(queue) as url, remote(url) as rq:
        assert rq.lease_seconds == 1800.0  # the client's guess: the default lease
        worker = Producing(rq)
        assert worker.heartbeat_interval == 10.0
        await worker.run_until_idle()
        assert rq.lease_seconds == 3.0
        assert worker.heartbeat_interval == 1.0
        pinned = Producing(rq, heartbeat_interval=0.5)
        await pinned.run_until_idle()
        assert pinned.heartbeat_interval == 0.5  # an interval given stays
