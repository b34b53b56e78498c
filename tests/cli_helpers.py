"""Running the ``asyncqueue`` command in subprocesses, for the CLI tests.

Every command runs as ``python -m asyncqueue --db DB ...`` in a real process, with this
checkout and ``tests/`` (for the worker classes in ``cli_workers``) on ``PYTHONPATH`` and
no ``QUEUE_*`` variables from the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from asyncqueue import JobQueue

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI process: this checkout first on the path, no QUEUE_*."""
    # The PostgreSQL tests' schema stays: it is where the test's queue lives.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("QUEUE_") or k == "QUEUE_DB_SCHEMA"
    }
    paths = [str(ROOT), str(TESTS)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def working_directory(db: Path | str) -> Path:
    """Where a command runs: beside the SQLite file (the tests' temporary directory)."""
    return TESTS if isinstance(db, str) else db.parent


def command(db: Path | str, *args: str) -> list[str]:
    """The argv of ``asyncqueue --db DB ARGS``."""
    return [sys.executable, "-m", "asyncqueue", "--db", str(db), *args]


def cli(
    db: Path | str, *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one command to completion; ``env`` adds environment variables."""
    return subprocess.run(
        command(db, *args),
        cwd=working_directory(db),
        env=cli_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have exited 0."""
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result.stdout


def cli_json(db: Path | str, *args: str) -> Any:
    """Run a command with ``--json`` and parse its output."""
    return json.loads(ok(cli(db, *args, "--json")))


def user_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one stderr line of a command that failed cleanly with ``code``."""
    assert result.returncode == code, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0].removeprefix("Error: ")


def with_queue(db: Path | str, fn: Callable[[JobQueue], Awaitable[T]], **settings: Any) -> T:
    """Run ``fn(queue)`` on an open queue in this process (for setting up and checking)."""

    async def main() -> T:
        async with JobQueue(db, **settings) as queue:
            return await fn(queue)

    return asyncio.run(main())


def wait_until(predicate: Callable[[], T], timeout: float = 15, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Background:
    """A CLI process left running, its output read line by line by two threads.

    ``env`` adds environment variables.
    """

    def __init__(self, db: Path | str, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            command(db, *args),
            cwd=working_directory(db),
            env=cli_env(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: dict[str, queue.Queue[str]] = {
            "stdout": queue.Queue(),
            "stderr": queue.Queue(),
        }
        self._readers = [
            threading.Thread(target=self._read, args=(name,), daemon=True)
            for name in ("stdout", "stderr")
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        stream = getattr(self.process, name)
        for line in stream:
            getattr(self, name).append(line)
            self._lines[name].put(line)

    def wait_for_line(self, text: str, *, stream: str = "stderr", timeout: float = 15) -> str:
        """The next line of ``stream`` that contains ``text`` (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        lines = self._lines[stream]
        while True:
            try:
                line = lines.get(timeout=0.05)
            except queue.Empty:
                ended = self.process.poll() is not None and not any(
                    reader.is_alive() for reader in self._readers
                )
                timed_out = time.monotonic() >= deadline
                if ended or timed_out:
                    seen = "".join(self.output(stream))
                    raise AssertionError(
                        f"no line with {text!r} (exit {self.process.poll()}); {stream}:\n{seen}"
                    ) from None
                continue
            if text in line:
                return line

    def output(self, stream: str) -> list[str]:
        """Every line read so far from ``stream``."""
        lines: list[str] = getattr(self, stream)
        return lines

    def send(self, sig: signal.Signals) -> None:
        """Send a signal to the process."""
        self.process.send_signal(sig)

    def wait(self, timeout: float = 15) -> int:
        """Wait for the process to exit; return its exit status."""
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
