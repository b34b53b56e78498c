"""The benchmark's phases, by name. Each fills in a :class:`PhaseResult` for one durability."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asyncqueue.bench.context import PhaseContext
from asyncqueue.bench.phases.depth import depth_phase
from asyncqueue.bench.phases.enqueue import (
    enqueue_concurrent_phase,
    enqueue_many_phase,
    enqueue_sequential_phase,
)
from asyncqueue.bench.phases.latency import latency_cross_process_phase, latency_same_process_phase
from asyncqueue.bench.phases.process import process_one_phase, process_two_phase
from asyncqueue.bench.phases.remote import (
    latency_remote_phase,
    remote_eight_phase,
    remote_four_phase,
    remote_one_phase,
)
from asyncqueue.bench.phases.resources import idle_cpu_phase, memory_phase
from asyncqueue.bench.result import PhaseResult

PhaseRunner = Callable[[PhaseContext, PhaseResult], Awaitable[None]]

#: Phase name -> the coroutine function that runs it (the order of ``config.ALL_PHASES``).
RUNNERS: dict[str, PhaseRunner] = {
    "enqueue-sequential": enqueue_sequential_phase,
    "enqueue-concurrent": enqueue_concurrent_phase,
    "enqueue-many": enqueue_many_phase,
    "process-1": process_one_phase,
    "process-2": process_two_phase,
    "latency-same-process": latency_same_process_phase,
    "latency-cross-process": latency_cross_process_phase,
    "idle-cpu": idle_cpu_phase,
    "depth": depth_phase,
    "memory": memory_phase,
    "remote-1": remote_one_phase,
    "remote-4": remote_four_phase,
    "remote-8": remote_eight_phase,
    "latency-remote": latency_remote_phase,
}

__all__ = ["RUNNERS", "PhaseRunner"]
