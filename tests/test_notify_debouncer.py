"""The NOTIFY debouncer's decisions, on a manual clock and a recorded timer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from asyncqueue.storage.postgres_notify import NotifyDebouncer

INTERVAL = 0.005


class Timers:
    """A stand-in for ``loop.call_later`` whose timers fire when the test says so."""

    def __init__(self, clock: list[float]) -> None:
        self._clock = clock
        self.pending: list[tuple[float, Callable[[], None], Any]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        handle = asyncio.get_running_loop().call_later(3600, lambda: None)  # a real handle
        self.pending.append((self._clock[0] + delay, callback, handle))
        return handle

    def fire_due(self) -> None:
        due = [t for t in self.pending if t[0] <= self._clock[0] and not t[2].cancelled()]
        self.pending = [t for t in self.pending if t not in due]
        for _, callback, handle in due:
            handle.cancel()
            callback()


def make() -> tuple[NotifyDebouncer, list[float], Timers, list[int]]:
    clock = [100.0]
    timers = Timers(clock)
    sent: list[int] = []

    async def send() -> None:
        sent.append(1)

    debouncer = NotifyDebouncer(
        send, INTERVAL, clock=lambda: clock[0], call_later=timers.call_later
    )
    return debouncer, clock, timers, sent


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_the_first_statement_of_a_quiet_spell_carries_the_notify() -> None:
    debouncer, clock, _, _ = make()
    assert debouncer.take_leading_edge()
    clock[0] += INTERVAL / 2
    assert not debouncer.take_leading_edge()
    clock[0] += INTERVAL / 2
    assert debouncer.take_leading_edge()


async def test_a_steady_producer_never_sends_a_lone_notify() -> None:
    """Each interval's first statement carries what the previous interval owed."""
    debouncer, clock, timers, sent = make()
    carried = 0
    for _ in range(200):  # an enqueue every 0.4 ms for 80 ms
        if debouncer.take_leading_edge():
            carried += 1
        else:
            debouncer.owe()
        clock[0] += 0.0004
        timers.fire_due()
        await settle()
    assert sent == []
    assert 14 <= carried <= 17  # one per 5 ms
    # The producer stops: what it owes goes out alone, at most two intervals later.
    clock[0] += 2 * INTERVAL
    timers.fire_due()
    await settle()
    assert sent == [1]


async def test_an_owed_notify_goes_out_alone_after_a_quiet_interval() -> None:
    debouncer, clock, timers, sent = make()
    assert debouncer.take_leading_edge()
    clock[0] += 0.001
    assert not debouncer.take_leading_edge()
    debouncer.owe()
    clock[0] = 100.0 + INTERVAL  # the interval is over, but an enqueue may still carry it
    timers.fire_due()
    await settle()
    assert sent == []
    clock[0] = 100.0 + 2 * INTERVAL
    timers.fire_due()
    await settle()
    assert sent == [1]
    # That lone NOTIFY opened an interval of its own.
    assert not debouncer.take_leading_edge()


async def test_a_timer_set_before_a_leading_edge_waits_for_the_new_interval() -> None:
    debouncer, clock, timers, sent = make()
    debouncer.take_leading_edge()
    debouncer.owe()  # timer due at 100.010
    clock[0] = 100.0 + INTERVAL + 0.001
    assert debouncer.take_leading_edge()  # pays the debt; new interval until 100.011
    debouncer.owe()  # owed again, in the new interval
    clock[0] = 100.0 + 2 * INTERVAL
    timers.fire_due()  # the old timer: too early for the new interval, so it waits
    await settle()
    assert sent == []
    clock[0] = 100.0 + INTERVAL + 0.001 + 2 * INTERVAL
    timers.fire_due()
    await settle()
    assert sent == [1]


async def test_nothing_is_sent_when_nothing_is_owed() -> None:
    debouncer, clock, timers, sent = make()
    debouncer.take_leading_edge()
    debouncer.owe()
    clock[0] += INTERVAL + 0.001
    assert debouncer.take_leading_edge()  # carried it
    clock[0] += 10 * INTERVAL
    timers.fire_due()
    await settle()
    assert sent == []


async def test_close_sends_what_is_owed_at_once() -> None:
    debouncer, _, timers, sent = make()
    debouncer.take_leading_edge()
    debouncer.owe()
    await debouncer.close()
    assert sent == [1]
    assert all(handle.cancelled() for _, _, handle in timers.pending)
    closed, _, _, sent_after = make()
    await closed.close()
    assert sent_after == []
