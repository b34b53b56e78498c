"""The retry policy: how long a failed attempt waits before the next one. Pure."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: ``min(max_delay, base_delay * multiplier ** retry_count)``.

    ``retry_count`` is the number of retries already made, so the first retry waits
    ``base_delay``. With ``jitter`` (off by default) the delay is drawn uniformly from
    ``[delay / 2, delay]`` ("equal jitter"), which spreads a burst of failures apart.
    """

    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 3600.0
    jitter: bool = False

    def delay_for(self, retry_count: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait before the retry that follows ``retry_count`` earlier retries."""
        if retry_count < 0:
            raise ValueError("retry_count must be >= 0")
        if self.base_delay <= 0 or self.max_delay <= 0:
            return 0.0
        try:
            # As floats: an int multiplier would make an exact (and huge) int power.
            delay = self.base_delay * float(self.multiplier) ** retry_count
        except OverflowError:
            delay = math.inf
        # Never more than max_delay, however large the power grew (inf included).
        delay = min(self.max_delay, delay)
        if self.jitter and delay > 0:
            delay = (rng or random).uniform(delay / 2, delay)
        return delay
