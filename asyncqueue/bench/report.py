"""The readable report: a header with machine and settings, one table, failures spelled out."""

from __future__ import annotations

import json
from pathlib import Path

from asyncqueue.bench.result import Metric, PhaseResult
from asyncqueue.bench.runner import BenchReport


def render(report: BenchReport) -> str:
    """The header, the table and, if any, the failures, as one printable string."""
    sections = [*_header(report), "", *_table(report), *_failures(report), *_library_log(report)]
    return "\n".join(sections) + "\n"


def write_json(report: BenchReport, path: Path) -> None:
    """Write the whole report as JSON to ``path``."""
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")


def _header(report: BenchReport) -> list[str]:
    m, c = report.machine, report.config
    load = " ".join(f"{x:g}" for x in m.load_average) if m.load_average else "?"
    poll = "library default" if c.poll_interval is None else f"{c.poll_interval:g} s"
    return [
        f"asyncqueue benchmark, {report.started_at} ({report.seconds:.0f} s)",
        f"machine:  {m.cpu_count} CPUs ({m.cpu_model}), {m.ram_gib} GiB RAM, {m.os}, load {load}",
        (
            f"software: Python {m.python}, SQLite {m.sqlite}, aiosqlite {m.aiosqlite}, "
            f"asyncqueue {m.asyncqueue}"
        ),
        (
            f"settings: n={c.n:,}, worker concurrency={c.concurrency}, poll_interval={poll}, "
            f"synchronous={'+'.join(c.syncs)}, quick={c.quick}"
        ),
        (
            f"          {c.producers} producers, enqueue_many chunks of {c.chunk:,}; latency "
            f"{c.latency_jobs} jobs every {c.latency_interval * 1000:g} ms; idle CPU over "
            f"{c.idle_seconds:g} s; memory {c.memory_jobs:,} jobs"
        ),
        (
            f"          depth cases {', '.join(c.depth_cases)} (small={c.depth_small:,}, "
            f"big={c.depth_big:,}), {c.depth_rounds} rounds; files in {c.directory}"
        ),
    ]


def _table(report: BenchReport) -> list[str]:
    syncs = list(report.config.syncs)
    lines = [
        "| phase | measure | " + " | ".join(syncs) + " | checks |",
        "|---|---|" + "---:|" * len(syncs) + "---|",
    ]
    for phase in dict.fromkeys(r.phase for r in report.results):
        results = {r.sync: r for r in report.results if r.phase == phase}
        verdict = _verdict(results)
        rows = _metric_rows(results)
        if not rows:
            rows = [("-", {})]
        for index, (label, cells) in enumerate(rows):
            values = " | ".join(cells.get(sync, "-") for sync in syncs)
            name, check = (phase, verdict) if index == 0 else ("", "")
            lines.append(f"| {name} | {label} | {values} | {check} |")
    return lines


def _metric_rows(results: dict[str, PhaseResult]) -> list[tuple[str, dict[str, str]]]:
    rows: dict[str, tuple[str, dict[str, str]]] = {}
    for sync, result in results.items():
        for metric in result.metrics:
            if not metric.detail:
                rows.setdefault(metric.key, (metric.label, {}))[1][sync] = _format(metric)
    return list(rows.values())


def _verdict(results: dict[str, PhaseResult]) -> str:
    failed = [sync for sync, result in results.items() if not result.ok]
    if not failed:
        return "ok"
    return "**FAILED** (" + ", ".join(failed) + ")"


def _format(metric: Metric) -> str:
    return f"{metric.value:,.{metric.digits}f}"


def _failures(report: BenchReport) -> list[str]:
    failed = [r for r in report.results if not r.ok]
    if not failed:
        return ["", "All phases passed: every job ran exactly once and get_queue_stats() agreed."]
    lines = ["", f"FAILED: {len(failed)} of {len(report.results)} phase runs."]
    for result in failed:
        for failure in result.failures():
            lines.append(f"  {result.phase} ({result.sync}): {failure}")
    return lines


def _library_log(report: BenchReport) -> list[str]:
    logged = [r for r in report.results if r.log_events]
    if not logged:
        return []
    lines = ["", "The library logged warnings or errors (full text in the work directory):"]
    for result in logged:
        events = ", ".join(f"{count} x {event}" for event, count in result.log_events.items())
        lines.append(f"  {result.phase} ({result.sync}): {events}")
    return lines
