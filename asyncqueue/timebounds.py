"""The range of times asyncqueue stores and reads back: its bounds live here and only here.

Times are stored as UTC epoch seconds, which SQLite holds far beyond the years Python's
``datetime`` can represent (1 to 9999). A time outside that range would be stored and then
break every read of its row, so:

- input that would put a time past :data:`MAX_TIMESTAMP` (a ``delay``, a ``run_at``) is
  refused, and times the library computes (a retry's backoff, a lease's expiry) are capped
  at it;
- a time stored outside the range anyway (by hand, or by an older version) reads back
  clamped to the nearest end of it, and ``asyncqueue db check`` names its row.

Pure, no I/O.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

#: The earliest storable time, 0001-01-01T00:00:00Z, in UTC epoch seconds.
MIN_TIMESTAMP = -62_135_596_800.0
#: The latest storable time, 9999-12-31T23:59:59Z, in UTC epoch seconds.
MAX_TIMESTAMP = 253_402_300_799.0
#: :data:`MIN_TIMESTAMP` as messages spell it.
MIN_TIME_TEXT = "0001-01-01T00:00:00Z"
#: :data:`MAX_TIMESTAMP` as messages spell it.
MAX_TIME_TEXT = "9999-12-31T23:59:59Z"
#: The longest duration a setting may give (retry delays, the lease): 100 years, in seconds.
MAX_SETTING_SECONDS = 100 * 365.25 * 86_400.0
#: The longest span between two storable times, in seconds.
MAX_SPAN_SECONDS = MAX_TIMESTAMP - MIN_TIMESTAMP

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def capped(timestamp: float) -> float:
    """A computed time (now plus some delay), capped at the latest storable time."""
    return min(timestamp, MAX_TIMESTAMP)


def clamped(value: object) -> float:
    """A stored time as epoch seconds within the storable range.

    A number outside the range becomes the nearest end of it (infinities included). A value
    that is not a number (NaN, or text written by hand into the REAL column) reads as 0.0,
    the epoch, as SQLite's own ``CAST(text AS REAL)`` reads text that is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    if isinstance(value, float) and math.isnan(value):
        return 0.0
    # Compared before converting: an int too large for a float still clamps.
    return float(min(max(value, MIN_TIMESTAMP), MAX_TIMESTAMP))


def due_time(value: object) -> float | None:
    """A stored ``run_at`` as a claim reads it: None for a value no claim ever finds due
    (NULL, NaN, text), otherwise :func:`clamped`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return clamped(value)


def clamped_seconds(value: object) -> float:
    """A duration computed from stored times, within what two storable times can span.

    Not a number reads as 0.0, as in :func:`clamped`.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    if isinstance(value, float) and math.isnan(value):
        return 0.0
    return float(min(max(value, -MAX_SPAN_SECONDS), MAX_SPAN_SECONDS))


def stored_datetime(value: Any) -> datetime:
    """A stored time (epoch seconds) as an aware UTC datetime; never raises.

    A time ``datetime`` can represent reads back as it is; any other is first
    :func:`clamped`.
    """
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, TypeError, OSError):
        # Arithmetic rather than fromtimestamp: some platforms' C library refuses times
        # before 1970 even though datetime represents them.
        return _EPOCH + timedelta(seconds=clamped(value))
