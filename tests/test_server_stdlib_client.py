"""The real server: ``asyncqueue serve`` in a subprocess, called over HTTP by a client that
uses only the standard library (``stdlib_client``), as a seed worker in another repository.
"""

from __future__ import annotations

import concurrent.futures
import re
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_helpers import ROOT, Background, cli, cli_env, user_error, wait_until, with_queue
from stdlib_client import SeedClient

TOKEN = "stdlib-test-token"
#: Fast retries, so a failed attempt comes back at once.
FAST_RETRIES = {"QUEUE_RETRY_BASE_DELAY": "0.01", "QUEUE_RETRY_MAX_DELAY": "0.01"}


@contextmanager
def server(db: Path, *args: str) -> Iterator[tuple[Background, SeedClient]]:
    """``asyncqueue serve`` on a free loopback port, once its health check answers."""
    with Background(db, "serve", "--port", "0", "--token", TOKEN, *args, env=FAST_RETRIES) as run:
        line = run.wait_for_line("asyncqueue serve: http://127.0.0.1:")
        match = re.search(r"(http://\S+/api)", line)
        assert match is not None, line
        client = SeedClient(match[1], TOKEN)
        wait_until(lambda: _healthy(client), timeout=10, what="the health check")
        yield run, client


def _healthy(client: SeedClient) -> bool:
    try:
        return client.health() == (200, {"status": "healthy"})
    except urllib.error.URLError:
        return False


def stop(run: Background) -> None:
    run.send(signal.SIGTERM)
    assert run.wait(timeout=10) == 0, "".join(run.output("stderr"))


def test_the_seed_lifecycle_over_http_with_the_standard_library(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    with server(db) as (run, client):
        assert SeedClient(client.base_url, None).claim("w1")[0] == 401
        assert SeedClient(client.base_url, "wrong").claim("w1")[0] == 401

        status, task = client.create_task(
            "PrismQ.YouTube.ScrapeShorts", "shorts-1", params={"q": "x"}
        )
        assert status == 201
        assert client.claim("w1", ["PrismQ.YouTube.ScrapeShorts"])[0] == 200
        assert client.claim("w1") == (404, None), "nothing left to claim"
        assert client.complete(task["id"], "w2", {"n": 1})[0] == 409, "w2 does not hold it"
        result = {"shorts": [{"video_id": "abc"}], "total_found": 1}
        assert client.complete(task["id"], "w1", result) == (200, {"status": "success"})
        status, done = client.get_task(task["id"])
        assert (status, done["status"], done["result"]) == (200, "completed", result)

        status, flaky = client.create_task("t", "flaky", max_retries=1)
        statuses = []
        for attempt in range(2):
            status, claimed = wait_until(
                lambda: (r := client.claim("w1"))[0] == 200 and r, what="the retry"
            )
            assert claimed["id"] == flaky["id"]
            assert client.fail(flaky["id"], "w1", f"boom {attempt}") == (200, {"status": "success"})
            statuses.append(client.get_task(flaky["id"])[1]["status"])
        assert statuses == ["retry_scheduled", "failed"]
        assert client.get_task(flaky["id"])[1]["error"] == "boom 1"
        assert client.request("GET", "/tasks/failed")[1]["tasks"][0]["id"] == flaky["id"]
        stop(run)
    assert "http.request" in "".join(run.output("stderr")), "requests are logged"


def test_sigterm_stops_the_server_cleanly_and_a_worker_keeps_its_lease_across_a_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "queue.db"
    with server(db, "--log-level", "debug") as (run, client):
        _, task = client.create_task("t", "survivor")
        _, claimed = client.claim("w1")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            poll = pool.submit(
                client.request, "POST", "/tasks/claim", {"worker_id": "w", "wait": 30}
            )
            run.wait_for_line("claim.long_poll")
            started = time.monotonic()
            stop(run)
            assert poll.result(timeout=10) == (404, None), "the long poll ended empty"
        assert time.monotonic() - started < 5, "the long poll did not hold the stop up"
    assert "asyncqueue serve: stopped" in "".join(run.output("stderr"))
    assert with_queue(db, lambda queue: queue.check_integrity()) == []

    with server(db) as (run, client):
        body = {"worker_id": "w1", "result": "done", "lease_token": claimed["lease_token"]}
        assert client.request("POST", f"/tasks/{task['id']}/complete", body)[0] == 200
        assert client.get_task(task["id"])[1]["status"] == "completed"
        stop(run)


def test_the_stdlib_example_worker_runs_the_seed_routes(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    with server(db) as (run, client):
        ids = [client.create_task("t", target)[1]["id"] for target in ("a", "bb")]
        failing = client.create_task("t", "c", params={"fail": "no"}, max_retries=0)[1]["id"]
        env = cli_env(TASKMANAGER_API_URL=client.base_url, QUEUE_API_TOKEN=TOKEN, MAX_RUNS="3")
        subprocess.run(
            [sys.executable, str(ROOT / "examples" / "stdlib_remote_worker.py")],
            env=env,
            check=True,
            timeout=60,
        )
        tasks = [client.get_task(task_id)[1] for task_id in (*ids, failing)]
        stop(run)
    assert [task["status"] for task in tasks] == ["completed", "completed", "failed"]
    assert tasks[1]["result"] == {"target": "bb", "length": 2}
    assert tasks[2]["error"] == "ValueError('no')"


def test_serve_refuses_to_run_open_unless_told_and_then_only_on_loopback(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    message = user_error(cli(db, "serve", "--port", "0"), code=2)
    assert "no API token configured" in message
    assert "--insecure" in message
    message = user_error(cli(db, "serve", "--insecure", "--host", "0.0.0.0"), code=2)
    assert "refusing to serve without an API token on 0.0.0.0" in message
    message = user_error(cli(db, "serve", "--token-file", str(tmp_path / "none")), code=2)
    assert "cannot read the token file" in message
    assert not db.exists(), "nothing was served, nothing was created"


def test_serve_without_the_server_extra_says_how_to_install_it(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "uvicorn.py").write_text('raise ImportError("blocked", name="uvicorn")\n')
    db = tmp_path / "queue.db"
    result = cli(db, "serve", "--insecure", env={"PYTHONPATH": str(blocked)})
    message = user_error(result)
    assert "uvicorn is missing" in message
    assert "pip install 'asyncqueue[server]'" in message


def test_the_readme_shows_the_stdlib_example_worker_as_it_is() -> None:
    example = (ROOT / "examples" / "stdlib_remote_worker.py").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"```python\n{example}```\n" in readme


@pytest.mark.postgres_only
def test_serve_on_a_database_url_does_not_print_its_password(db_path: str) -> None:
    url = db_path.replace("postgres@", "postgres:not-a-real-secret@", 1)
    assert "not-a-real-secret" in url, "the URL names the user postgres"
    with Background(url, "serve", "--port", "0", "--token", TOKEN) as run:
        line = run.wait_for_line("asyncqueue serve: http://127.0.0.1:")
        stop(run)
    assert "postgres:***@" in line
    assert "not-a-real-secret" not in "".join(run.output("stderr"))
