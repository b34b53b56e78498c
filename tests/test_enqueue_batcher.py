"""The PostgreSQL backend's enqueue batcher, with a fake statement: who shares which one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from asyncqueue.job import JobId
from asyncqueue.storage.postgres_batch import MAX_IN_FLIGHT, EnqueueBatcher
from asyncqueue.validation import NewJob


def job(target: str) -> NewJob:
    return NewJob("t", target, 5, 3, "{}", 0.0)


class FakeStatements:
    """Records each statement's targets; each takes until ``release`` is set."""

    def __init__(self) -> None:
        self.statements: list[list[str]] = []
        self.tasks: list[asyncio.Task[object] | None] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None
        self.next_id = 0

    async def insert(self, batch: Sequence[tuple[NewJob, float]]) -> list[JobId]:
        self.statements.append([j.target_id for j, _ in batch])
        self.tasks.append(asyncio.current_task())
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        ids = [JobId(self.next_id + i) for i in range(len(batch))]
        self.next_id += len(batch)
        return ids


async def test_a_lone_enqueue_goes_out_from_the_callers_own_task() -> None:
    fake = FakeStatements()
    batcher = EnqueueBatcher(fake.insert)
    assert await batcher.submit(job("a"), 0.0) == 0
    assert await batcher.submit(job("b"), 0.0) == 1
    assert fake.statements == [["a"], ["b"]]
    assert fake.tasks == [asyncio.current_task()] * 2


async def test_enqueues_made_while_one_is_in_flight_share_the_next_statement() -> None:
    fake = FakeStatements()
    fake.release.clear()
    batcher = EnqueueBatcher(fake.insert)
    first = asyncio.create_task(batcher.submit(job("first"), 0.0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.submit(job(f"r{i}"), 0.0)) for i in range(50)]
    await asyncio.sleep(0.01)
    fake.release.set()
    ids = await asyncio.gather(first, *rest)
    assert sorted(ids) == list(range(51))
    assert fake.statements[0] == ["first"]
    assert [t for s in fake.statements[1:] for t in s] == [f"r{i}" for i in range(50)]
    assert len(fake.statements) <= 1 + MAX_IN_FLIGHT
    await batcher.drain()


async def test_a_failed_statement_fails_every_enqueue_it_carried_and_no_other() -> None:
    fake = FakeStatements()
    fake.release.clear()
    batcher = EnqueueBatcher(fake.insert)
    first = asyncio.create_task(batcher.submit(job("first"), 0.0))
    await asyncio.sleep(0)
    fake.fail = RuntimeError("statement failed")
    shared = [asyncio.create_task(batcher.submit(job(f"r{i}"), 0.0)) for i in range(3)]
    await asyncio.sleep(0.01)
    fake.release.set()
    results = await asyncio.gather(first, *shared, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    fake.fail = None
    assert await batcher.submit(job("after"), 0.0) == 0
    fake.fail = RuntimeError("again")
    with pytest.raises(RuntimeError, match="again"):
        await batcher.submit(job("x"), 0.0)
