"""asyncqueue's structlog logger.

An app that configured structlog gets every asyncqueue event through its own pipeline
(debug events for each job state change included). An app that did not gets only warnings
and errors on stderr, so embedding the queue does not flood its output.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_quiet: Any = None


def get_logger(name: str = "asyncqueue", **initial: Any) -> Any:
    """A bound logger for ``name`` with ``initial`` context, honouring the app's config."""
    global _quiet
    if structlog.is_configured():
        # bind() resolves structlog's lazy proxy now: left lazy, every call (even a debug
        # event the level filters out) builds a new logger unless the app configured
        # cache_logger_on_first_use, which is off by default (measured: 15 % of a worker's
        # throughput with no-op jobs).
        return structlog.get_logger(name, **initial).bind()
    if _quiet is None:
        _quiet = structlog.wrap_logger(
            structlog.PrintLogger(sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                # Plain tracebacks: rich's (the default when it is installed) prints each
                # frame's locals, job metadata included, and takes minutes to highlight an
                # exception message of a megabyte.
                structlog.dev.ConsoleRenderer(
                    colors=False, exception_formatter=structlog.dev.plain_traceback
                ),
            ],
        )
    return _quiet.bind(logger=name, **initial)
