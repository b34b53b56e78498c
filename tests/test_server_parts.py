"""The server's parts on their own: tokens, the exposure check, the lease sweeper, layering."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import DEADLINE, WatchedClock

from asyncqueue import ConfigurationError, JobQueue, JobStatus
from asyncqueue.server import ApiTokens, Scope, lease_sweeper
from asyncqueue.server.serve import check_exposure, is_loopback
from asyncqueue.server.sweeper import sweep_interval


def test_tokens_parse_scoped_entries_from_lines_or_commas() -> None:
    tokens = ApiTokens.parse("# ops\nadmin a1\n\nworker  w1\nREAD:r1, worker:w2\n")
    assert len(tokens) == 4
    assert [tokens.scope_of(t) for t in ("a1", "w1", "r1", "w2", "x", "")] == [
        Scope.ADMIN,
        Scope.WORKER,
        Scope.READ,
        Scope.WORKER,
        None,
        None,
    ]
    assert (ApiTokens.admin("a") | ApiTokens.parse("read r")).scope_of("r") is Scope.READ


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("owner t1", "unknown token scope 'owner'"),
        ("admin", "entry 1 is not 'SCOPE TOKEN'"),
        ("admin t1\nread t1", "two different scopes"),
        ("admin:", "entry 1 is not"),
    ],
)
def test_malformed_token_entries_are_refused_without_quoting_the_token(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        ApiTokens.parse(text, source="tokens.txt")
    assert "t1" not in str(caught.value)
    assert str(caught.value).startswith("tokens.txt: ")


def test_tokens_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("worker w\nread r\n", encoding="utf-8")
    assert ApiTokens.from_file(path).scope_of("w") is Scope.WORKER
    with pytest.raises(ConfigurationError, match="cannot read the token file"):
        ApiTokens.from_file(tmp_path / "missing")
    env = {"QUEUE_API_TOKEN": "adm", "QUEUE_API_TOKENS": "read r"}
    tokens = ApiTokens.from_environment(env)
    assert (tokens.scope_of("adm"), tokens.scope_of("r")) == (Scope.ADMIN, Scope.READ)
    assert not ApiTokens.from_environment({})
    with pytest.raises(ConfigurationError, match="QUEUE_API_TOKEN: "):
        ApiTokens.from_environment({"QUEUE_API_TOKEN": "two words"})


def test_only_loopback_hosts_may_serve_without_a_token() -> None:
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "127.1.2.3")] == [
        True
    ] * 5
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com"))
    check_exposure("127.0.0.1", authenticated=False, allow_insecure_public=False)
    check_exposure("0.0.0.0", authenticated=True, allow_insecure_public=False)
    check_exposure("0.0.0.0", authenticated=False, allow_insecure_public=True)
    with pytest.raises(ConfigurationError, match="refusing to serve without an API token"):
        check_exposure("0.0.0.0", authenticated=False, allow_insecure_public=False)


async def test_the_sweeper_takes_back_expired_leases_and_survives_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = WatchedClock(start=1_800_000_000.0)
    async with JobQueue(tmp_path / "q.db", clock=clock, job_timeout_minutes=1) as queue:
        interval = sweep_interval(queue)
        assert interval == 10.0
        job_id = await queue.enqueue("t", "x")
        await queue.claim("remote", limit=1)
        real_recover = queue.recover_stale_jobs
        calls: list[str] = []

        async def recover() -> int:
            calls.append("sweep")
            if len(calls) == 1:
                raise RuntimeError("database is locked")
            return await real_recover()

        monkeypatch.setattr(queue, "recover_stale_jobs", recover)
        async with lease_sweeper(queue):
            for _ in range(7):  # 70 s: past the 60 s lease
                await clock.wait_for_sleeper(interval)
                clock.advance(interval)
            await clock.wait_for_sleeper(interval)
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.status is JobStatus.PENDING
        assert "lease expired" in (job.error_message or "")
        assert len(calls) == 7, "the failed first sweep did not stop the sweeper"


def test_the_sweeper_interval_is_a_third_of_a_short_lease(tmp_path: Path) -> None:
    assert sweep_interval(JobQueue(tmp_path / "q.db", job_timeout_minutes=0.25)) == 5.0


def test_importing_asyncqueue_does_not_import_the_server_or_fastapi() -> None:
    code = (
        "import sys, asyncqueue, asyncqueue.cli\n"
        "assert 'fastapi' not in sys.modules, 'fastapi'\n"
        "assert 'asyncqueue.server' not in sys.modules, 'server'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=DEADLINE * 3)
