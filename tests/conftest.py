"""Shared fixtures: a fresh queue file per test, and a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asyncqueue import JobQueue, ManualClock


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


@pytest.fixture
async def queue(db_path: Path, clock: ManualClock) -> AsyncIterator[JobQueue]:
    async with JobQueue(db_path, clock=clock, retry_base_delay=1.0) as q:
        yield q
