"""The asyncqueue benchmark: ``python -m asyncqueue.bench --help``.

Measures enqueue rates, processing throughput (one and two worker processes), enqueue-to-start
latency (same process and cross-process), idle CPU, throughput against backlog depth, and a
worker's memory while draining; every phase checks that each job ran exactly once and that
``get_queue_stats()`` agrees. Phases are measured the way ``../shared/peer-bench`` measures the
other Python job queues, so the figures compare.

This package imports only asyncqueue's public API. Importing it is cheap: worker processes
(``asyncqueue.bench.child``) load nothing they do not need.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from command-line arguments; return the process exit status."""
    from asyncqueue.bench.cli import main as cli_main

    return cli_main(argv)
