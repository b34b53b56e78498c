"""What a phase found: its figures and the correctness checks they rest on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Checks whose failure means a job ran other than exactly once.
DELIVERY_CHECKS = frozenset({"exactly_once"})


@dataclass(frozen=True, slots=True)
class Metric:
    """One figure, e.g. ``jobs_s = 8123.4`` labelled ``"jobs/s"``; details stay out of the table."""

    key: str
    label: str
    value: float
    digits: int = 0
    detail: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    """One correctness check and, when it failed, why."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class PhaseResult:
    """A phase run at one durability setting."""

    phase: str
    sync: str
    metrics: list[Metric] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    log_events: dict[str, int] = field(default_factory=dict)

    def add(
        self, key: str, label: str, value: float, digits: int = 0, *, detail: bool = False
    ) -> None:
        """Record a figure (``detail``: in the JSON only)."""
        self.metrics.append(Metric(key, label, value, digits, detail))

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        """Record a check."""
        self.checks.append(Check(name, ok, detail))

    @property
    def ok(self) -> bool:
        """No error, at least one check, and every check passed."""
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def exactly_once(self) -> bool:
        """Every delivery check passed (and there was at least one)."""
        delivery = [c for c in self.checks if c.name in DELIVERY_CHECKS]
        return bool(delivery) and all(c.ok for c in delivery)

    def failures(self) -> list[str]:
        """Why the phase failed, one entry per failed check or error."""
        found = [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]
        if self.error is not None:
            found.append(f"error: {self.error}")
        elif not self.checks:
            found.append("no check ran")
        return found

    def summary(self) -> str:
        """A short line for the progress output."""
        headline = [m for m in self.metrics if not m.detail][:3]
        figures = ", ".join(f"{m.label} {m.value:,.{m.digits}f}" for m in headline)
        verdict = "ok" if self.ok else "FAILED (" + "; ".join(self.failures()) + ")"
        return f"{figures} - {verdict}" if figures else verdict

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "phase": self.phase,
            "sync": self.sync,
            "ok": self.ok,
            "exactly_once": self.exactly_once,
            "metrics": {m.key: m.value for m in self.metrics},
            "labels": {m.key: m.label for m in self.metrics},
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "notes": self.notes,
            "library_log": self.log_events,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }
