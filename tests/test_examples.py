"""The examples and the README's code, run as a user would run them.

README convention: a fenced ``python`` block right after an HTML comment
``<!-- readme-test: KIND -->`` is a complete program, and KIND says how it is checked:

- ``run``: executed in a fresh directory; it must exit 0, and print, in order, the lines that
  its ``# -> text`` comments state.
- ``service``: a long-running program; once it prints its first line it is sent SIGTERM and
  must then exit 0 (a graceful stop).
- ``pytest``: a test module, run with pytest.

Every other ``python`` block is a fragment: it must compile (top-level ``await`` allowed) and
import only names that asyncqueue exports.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib.util
import inspect
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import asyncqueue
from asyncqueue import JobQueue, QueueWorker
from asyncqueue.config import DEFAULT_DB_PATH, ENVIRONMENT_VARIABLES, QueueSettings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUE_")}
    env.update(extra)
    return env


def _run(
    args: list[str], cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


# -- examples/quickstart.py ----------------------------------------------------------------


def _final_stats(output: str) -> dict[str, int]:
    block = output.split("final stats:\n", 1)[1]
    stats = {}
    for line in block.splitlines():
        match = re.fullmatch(r"  (\w+)\s+(\d+)", line)
        if not match:
            break
        stats[match[1]] = int(match[2])
    return stats


def test_quickstart_drains_the_queue_with_retries_and_failures(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    started = time.monotonic()
    out = _ok(_run([str(EXAMPLES / "quickstart.py"), str(db)], cwd=tmp_path))

    assert time.monotonic() - started < 20
    assert "enqueued 300 jobs (1 duplicate refused" in out
    assert re.search(r"workers=2$", out, re.MULTILINE), "progress lines show both workers"
    stats = _final_stats(out)
    assert stats["total_jobs"] == 300
    assert stats["completed_jobs"] == 297
    assert stats["failed_jobs"] == 3
    assert stats["pending_jobs"] + stats["processing_jobs"] + stats["retry_scheduled_jobs"] == 0
    retried = int(re.search(r"completed after a retry: (\d+) jobs", out)[1])  # type: ignore[index]
    assert retried > 0
    failed_lines = out.split("failed jobs:\n", 1)[1].strip().splitlines()
    assert len(failed_lines) == 3
    assert all("after 2 attempts: ValueError:" in line for line in failed_lines)


def test_quickstart_reads_queue_db_path_and_starts_clean_on_rerun(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    for _ in range(2):
        out = _ok(_run([str(EXAMPLES / "quickstart.py")], cwd=tmp_path, QUEUE_DB_PATH=str(db)))
        assert _final_stats(out)["total_jobs"] == 300
    assert db.exists()


async def test_quickstart_refuses_to_delete_a_queue_that_is_not_its_own(tmp_path: Path) -> None:
    db = tmp_path / "production.db"
    async with JobQueue(db) as queue:
        await queue.enqueue("send_invoice", "customer-1")

    result = _run([str(EXAMPLES / "quickstart.py"), str(db)], cwd=tmp_path)

    assert result.returncode != 0
    assert "refusing to delete" in result.stderr
    async with JobQueue(db) as queue:
        assert (await queue.get_queue_stats()).pending_jobs == 1


# -- examples/custom_worker.py -------------------------------------------------------------


def test_custom_worker_runs_the_seed_examples(tmp_path: Path) -> None:
    out = _ok(_run([str(EXAMPLES / "custom_worker.py"), str(tmp_path / "q.db")], cwd=tmp_path))

    assert out.splitlines() == [
        "Enqueued job 1",
        "Pending: 1, Processing: 0",
        "Processing video_id_123",
        "MyWorker ran 2 jobs",
        "Transcript for video_id_456: /transcripts/video_id_456.txt",
        "Total jobs: 3",
        "Pending: 0",
        "Active workers: 0",
        "Job 2: process_job returned False",
        "Cleaned up 0 old jobs",
        "Recovered 0 stale jobs",
    ]


# -- examples/fastapi_app.py ---------------------------------------------------------------


def _load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def api(
    db_path: Path | str,
    pg_schema: str | None,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> AsyncIterator[httpx.AsyncClient]:
    """The FastAPI example inside its lifespan, on each backend (``QUEUE_DB_PATH`` a file or a
    URL); ``APP_WORKERS`` from the test's parameter."""
    for name in ENVIRONMENT_VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QUEUE_DB_PATH", str(db_path))
    if pg_schema is not None:
        monkeypatch.setenv("QUEUE_DB_SCHEMA", pg_schema)
    monkeypatch.setenv("APP_WORKERS", str(getattr(request, "param", 2)))
    app: FastAPI = _load_example("fastapi_app").app
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        yield client


async def _wait_for_status(client: httpx.AsyncClient, job_id: int, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        response = await client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200
        job: dict[str, Any] = response.json()
        if job["status"] == status:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        await asyncio.sleep(0.02)


async def test_fastapi_app_enqueues_and_its_workers_complete_the_job(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("/api/download-transcript", params={"video_id": "abc", "priority": 1})
    assert response.status_code == 200
    body = response.json()
    assert body == {"job_id": body["job_id"], "status": "queued", "created": True}
    assert isinstance(body["job_id"], int)

    job = await _wait_for_status(api, body["job_id"], "completed")
    assert job["job_type"] == "download_transcript"
    assert job["target_id"] == "abc"
    assert job["priority"] == 1

    status = (await api.get("/api/queue-status")).json()
    assert status["completed"] == 1
    assert status["pending"] == status["processing"] == status["failed"] == 0
    assert status["total"] == 1
    assert status["active_workers"] == 2


@pytest.mark.parametrize("api", [0], indirect=True)
async def test_fastapi_app_refuses_duplicates_and_bad_input(api: httpx.AsyncClient) -> None:
    # APP_WORKERS=0: an API-only process, so the job stays pending and the pair stays taken.
    first = (await api.post("/api/download-transcript", params={"video_id": "v1"})).json()
    again = (await api.post("/api/download-transcript", params={"video_id": "v1"})).json()
    assert first["created"] is True
    assert again == {"job_id": first["job_id"], "status": "queued", "created": False}

    status = (await api.get("/api/queue-status")).json()
    assert status["pending"] == status["total"] == 1
    assert status["active_workers"] == 0

    for priority in (0, 11):
        bad = await api.post(
            "/api/download-transcript", params={"video_id": "v2", "priority": priority}
        )
        assert bad.status_code == 422
        assert "priority must be between 1 (highest) and 10" in bad.json()["detail"]
    too_long = await api.post("/api/download-transcript", params={"video_id": "x" * 256})
    assert too_long.status_code == 422
    assert "target_id" in too_long.json()["detail"]
    assert (await api.get("/api/queue-status")).json()["total"] == 1

    missing = await api.get("/api/jobs/999")
    assert missing.status_code == 404


async def test_fastapi_app_shutdown_stops_workers_and_leaves_nothing_processing(
    db_path: Path | str, pg_schema: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENVIRONMENT_VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QUEUE_DB_PATH", str(db_path))
    if pg_schema is not None:
        monkeypatch.setenv("QUEUE_DB_SCHEMA", pg_schema)
    app: FastAPI = _load_example("fastapi_app").app
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        ids = [
            (await client.post("/api/download-transcript", params={"video_id": f"v{n}"})).json()
            for n in range(20)
        ]
    # Shut down while jobs were queued and running: the running ones were allowed to finish.

    async with JobQueue(db_path) as queue:
        stats = await queue.get_queue_stats()
        assert stats.total_jobs == len(ids)
        assert stats.processing_jobs == 0
        assert stats.completed_jobs + stats.pending_jobs == len(ids)
        assert stats.active_workers == 0


# -- README.md -----------------------------------------------------------------------------


@dataclasses.dataclass
class Block:
    kind: str  # run, service, pytest, or fragment
    code: str
    line: int

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.kind})"


def _readme_blocks(language: str) -> list[Block]:
    blocks = []
    lines = README.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() == f"```{language}":
            start = index
            end = lines.index("```", start + 1)
            marker = re.fullmatch(r"<!-- readme-test: (\w+) -->", lines[start - 1].strip())
            kind = marker[1] if marker else "fragment"
            blocks.append(Block(kind, "\n".join(lines[start + 1 : end]) + "\n", start + 1))
            index = end
        index += 1
    return blocks


PYTHON_BLOCKS = _readme_blocks("python")


def test_readme_has_runnable_examples() -> None:
    kinds = [block.kind for block in PYTHON_BLOCKS]
    assert {"run", "service", "pytest"} <= set(kinds)
    assert set(kinds) <= {"run", "service", "pytest", "fragment"}


@pytest.mark.parametrize("block", [b for b in PYTHON_BLOCKS if b.kind == "run"], ids=str)
def test_readme_program_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    out = _ok(_run([str(script)], cwd=tmp_path, QUEUE_DB_PATH=str(tmp_path / "env.db")))

    # A `# -> text` comment states a line of output; they must appear in order.
    expected = re.findall(r"#\s*->\s*(.*?)\s*$", block.code, re.MULTILINE)
    lines = iter(line.strip() for line in out.splitlines())
    for text in expected:
        assert any(line == text for line in lines), f"{block}: no {text!r} in order in\n{out}"


@pytest.mark.parametrize("block", [b for b in PYTHON_BLOCKS if b.kind == "service"], ids=str)
def test_readme_service_stops_gracefully_on_sigterm(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(block.code, encoding="utf-8")
    with subprocess.Popen(
        [sys.executable, "-u", str(script)],
        cwd=tmp_path,
        env=_env(QUEUE_DB_PATH=str(tmp_path / "env.db")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            first_line = process.stdout.readline()
            assert first_line, "the service printed nothing"
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, f"exit {process.returncode}\n{first_line}{out}\n{err}"


@pytest.mark.parametrize("block", [b for b in PYTHON_BLOCKS if b.kind == "pytest"], ids=str)
def test_readme_test_module_passes(block: Block, tmp_path: Path) -> None:
    (tmp_path / "test_readme_block.py").write_text(block.code, encoding="utf-8")
    _ok(
        _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme_block.py"], cwd=tmp_path)
    )


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=str)
def test_readme_python_compiles_and_imports_real_names(block: Block) -> None:
    tree = compile(
        block.code, str(block), "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "asyncqueue":
            names = {alias.name for alias in node.names}
            assert names <= set(asyncqueue.__all__), f"{block}: {names - set(asyncqueue.__all__)}"


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    commands = section.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python examples/quickstart.py",
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest",
    ]
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci_lines


def _table_rows(heading: str) -> dict[str, list[str]]:
    """The rows of the first table after ``heading``, keyed by the first cell's name."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = cells[0].strip("`")
        if name and not set(name) <= {"-", ":"} and name != "Argument":
            rows[name] = cells[1:]
    return rows


def _literal_default(cell: str) -> Any:
    """The first backticked literal in a table cell, or a marker when it is not a literal."""
    match = re.search(r"`([^`]+)`", cell)
    try:
        return ast.literal_eval(match[1]) if match else ...
    except (ValueError, SyntaxError):
        return ...


def test_readme_configuration_table_matches_the_code() -> None:
    rows = _table_rows("### JobQueue")
    parameters = list(inspect.signature(JobQueue).parameters)
    assert list(rows) == parameters
    defaults = {f.name: f.default for f in dataclasses.fields(QueueSettings)}
    defaults["path"] = DEFAULT_DB_PATH
    for name, (env_cell, default_cell, *_) in rows.items():
        env = env_cell.strip("`")
        assert env == ENVIRONMENT_VARIABLES.get(name, "—"), name
        if name in defaults:
            assert _literal_default(default_cell) == defaults[name], name


def test_readme_worker_table_matches_the_code() -> None:
    rows = _table_rows("### QueueWorker")
    signature = inspect.signature(QueueWorker)
    assert list(rows) == list(signature.parameters)
    for name, (default_cell, *_) in rows.items():
        default = signature.parameters[name].default
        if default is not inspect.Parameter.empty:
            assert _literal_default(default_cell) == default, name
