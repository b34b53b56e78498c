"""Worker processes: start, stop with SIGTERM, and read their CPU time and memory."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncqueue
from asyncqueue.bench.config import DbLocation, SchemaUrl
from asyncqueue.bench.joblog import JobLogReader

#: Seconds a worker gets to stop after SIGTERM before it is killed (and the phase fails).
STOP_TIMEOUT = 30.0
_POLL_SECONDS = 0.02  # as the peer bench; job times come from the log, not the poll


@dataclass(slots=True)
class WorkerProcess:
    """A running ``asyncqueue.bench.child`` process."""

    process: asyncio.subprocess.Process
    stderr_path: Path
    spawned_at: float
    #: Created by the worker once it handles SIGTERM (see ``asyncqueue.bench.child``).
    ready_path: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def exited(self) -> bool:
        """Whether the process has ended."""
        return self.process.returncode is not None


async def spawn_worker(
    *,
    db: DbLocation,
    log: Path,
    sync: str,
    concurrency: int,
    poll_interval: float | None,
    stderr_path: Path,
    url: str | None = None,
) -> WorkerProcess:
    """Start a worker process on ``db`` (or on the API at ``url``) that logs its jobs to ``log``."""
    command = [
        sys.executable,
        "-m",
        "asyncqueue.bench.child",
        f"--db={db}",
        f"--log={log}",
        f"--sync={sync}",
        f"--concurrency={concurrency}",
    ]
    if url is not None:
        command.append(f"--url={url}")
    if poll_interval is not None:
        command.append(f"--poll-interval={poll_interval}")
    if isinstance(db, SchemaUrl):
        command.append(f"--schema={db.schema}")
    ready_path = stderr_path.with_name(f"{stderr_path.name}.ready")
    ready_path.unlink(missing_ok=True)
    command.append(f"--ready={ready_path}")
    spawned_at = time.time()
    with stderr_path.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=child_environment(),
            start_new_session=True,
        )
    return WorkerProcess(process, stderr_path, spawned_at, ready_path)


def child_environment() -> dict[str, str]:
    """This environment, with this very asyncqueue importable (installed or not)."""
    source_root = str(Path(asyncqueue.__file__).resolve().parent.parent)
    env = dict(os.environ)
    paths = [source_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


async def stop_worker(worker: WorkerProcess, patience: float = STOP_TIMEOUT) -> str | None:
    """SIGTERM the worker and wait for it; return a problem, or None after a clean exit.

    A worker still starting up (a short phase can end before it has) gets the signal once
    it handles it, instead of being killed half-started.
    """
    await _until_ready(worker, time.monotonic() + patience)
    if not worker.exited():
        worker.process.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.wait_for(worker.process.wait(), patience)
    except TimeoutError:
        worker.process.kill()
        await worker.process.wait()
        return f"worker {worker.pid} ignored SIGTERM for {patience:.0f} s and was killed"
    if code != 0:
        return f"worker {worker.pid} exited with {code}: {stderr_tail(worker.stderr_path)}"
    return None


async def _until_ready(worker: WorkerProcess, deadline: float) -> None:
    while True:
        if worker.exited() or worker.ready_path.exists() or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.01)


async def stop_workers(workers: Sequence[WorkerProcess]) -> list[str]:
    """Stop every worker at once; return their problems."""
    problems = await asyncio.gather(*(stop_worker(worker) for worker in workers))
    return [problem for problem in problems if problem is not None]


def stderr_tail(path: Path, lines: int = 5) -> str:
    """The last lines a worker wrote to stderr, joined with `` | ``."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


async def wait_for_jobs(
    reader: JobLogReader,
    done: Callable[[], bool],
    *,
    stall_timeout: float,
    gave_up: Callable[[], bool] = lambda: False,
    on_poll: Callable[[], None] | None = None,
) -> bool:
    """Poll the log until ``done()``; return False once ``gave_up()`` (a worker died) or
    no new job started for ``stall_timeout`` seconds."""
    seen, progress_at = -1, time.monotonic()
    while True:
        count = reader.poll()
        if on_poll is not None:
            on_poll()
        if done():
            return True
        if gave_up():
            return False
        if count != seen:
            seen, progress_at = count, time.monotonic()
        elif time.monotonic() - progress_at > stall_timeout:
            return False
        await asyncio.sleep(_POLL_SECONDS)


def any_exited(workers: Sequence[WorkerProcess]) -> Callable[[], bool]:
    """A ``gave_up`` test for :func:`wait_for_jobs`: some worker process has ended."""
    return lambda: any(worker.exited() for worker in workers)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process from ``/proc/<pid>/status`` (None where unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process from ``/proc/<pid>/stat`` (None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces; the fields after it do not.
    fields = text.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_precise(pid: int) -> float | None:
    """CPU time of a process's live threads in nanosecond resolution (``schedstat``).

    ``/proc/<pid>/stat`` counts in clock ticks (10 ms), too coarse for an idle process over
    two seconds. Threads that exit in between are not counted here; compare with
    :func:`cpu_seconds`. None where ``schedstat`` is unavailable.
    """
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                    total += int(schedstat.read().split()[0])
            except FileNotFoundError:
                continue  # the thread ended
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return total / 1e9
