"""Shared snapshots (server/snapshots.py): one read per page and interval, however many ask."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from server.snapshots import SharedSnapshots


class Page(msgspec.Struct):
    n: int


class Ledger:
    """Counts reads; each waits for `release` so that callers can pile up on it."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False

    async def read(self) -> Page:
        self.reads += 1
        await self.release.wait()
        if self.fail:
            raise ConnectionError("ledger gone")
        return Page(self.reads)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_callers_share_one_read() -> None:
    ledger, snapshots = Ledger(), SharedSnapshots(Clock())
    ledger.release.clear()
    callers = [asyncio.create_task(snapshots.get("k", ledger.read, 1.0)) for _ in range(50)]
    await asyncio.sleep(0)
    ledger.release.set()
    answers = await asyncio.gather(*callers)
    assert ledger.reads == 1
    assert {a.body for a in answers} == {b'{"n":1}'}
    assert len({a.etag for a in answers}) == 1


async def test_a_snapshot_is_reused_while_young_enough_and_read_again_after() -> None:
    ledger, clock = Ledger(), Clock()
    snapshots = SharedSnapshots(clock)
    first = await snapshots.get("k", ledger.read, 1.0)
    clock.now += 1.0
    assert await snapshots.get("k", ledger.read, 1.0) is first
    assert await snapshots.get("other", ledger.read, 1.0) is not first
    clock.now += 0.5
    assert (await snapshots.get("k", ledger.read, 1.0)).body == b'{"n":3}'
    # A caller accepting an older answer still gets the newest kept.
    assert (await snapshots.get("k", ledger.read, 5.0)).body == b'{"n":3}'
    assert ledger.reads == 3


async def test_a_caller_wanting_a_fresh_answer_reads_alone() -> None:
    ledger, snapshots = Ledger(), SharedSnapshots(Clock())
    await snapshots.get("k", ledger.read, 5.0)
    fresh = await snapshots.get("k", ledger.read, 0)
    assert fresh.body == b'{"n":2}'
    # Not kept for the others: they still get what they accepted.
    assert (await snapshots.get("k", ledger.read, 5.0)).body == b'{"n":1}'
    assert ledger.reads == 2


async def test_a_failed_read_reaches_every_waiter_and_is_not_kept() -> None:
    ledger, snapshots = Ledger(), SharedSnapshots(Clock())
    ledger.release.clear()
    ledger.fail = True
    callers = [asyncio.create_task(snapshots.get("k", ledger.read, 1.0)) for _ in range(3)]
    await asyncio.sleep(0)
    ledger.release.set()
    for answer in await asyncio.gather(*callers, return_exceptions=True):
        assert isinstance(answer, ConnectionError)
    ledger.fail = False
    assert (await snapshots.get("k", ledger.read, 1.0)).body == b'{"n":2}'


async def test_a_caller_that_hangs_up_does_not_cancel_the_others_read() -> None:
    ledger, snapshots = Ledger(), SharedSnapshots(Clock())
    ledger.release.clear()
    leaving = asyncio.create_task(snapshots.get("k", ledger.read, 1.0))
    staying = asyncio.create_task(snapshots.get("k", ledger.read, 1.0))
    await asyncio.sleep(0)
    leaving.cancel()
    ledger.release.set()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert (await staying).body == b'{"n":1}'
    assert ledger.reads == 1
