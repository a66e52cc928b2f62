"""The sold-out memory asks the ledger one question per schedule at a time, however many
requests wait for its answer (server/fastpath.py)."""

from __future__ import annotations

import asyncio

from server.fastpath import SoldOutMemory

TTL = 0.05


class Ledger:
    """What the ledger says of a schedule, and how often it was asked."""

    def __init__(self, sold_out: bool) -> None:
        self.sold_out = sold_out
        self.asked = 0
        self.answer = asyncio.Event()

    async def still_sold_out(self, schedule_id: int) -> bool:
        self.asked += 1
        await self.answer.wait()
        return self.sold_out


async def lapsed(ledger: Ledger) -> SoldOutMemory:
    memory = SoldOutMemory(TTL, ledger.still_sold_out)
    memory.remember("7")
    await asyncio.sleep(TTL * 2)
    assert memory.answer("7") is None
    return memory


async def crowd_after_a_pause(memory: SoldOutMemory, ledger: Ledger) -> list[int | None]:
    waiting = [asyncio.create_task(memory.confirm("7")) for _ in range(100)]
    await asyncio.sleep(0)
    ledger.answer.set()
    return [None if r is None else r.status for r in await asyncio.gather(*waiting)]


async def test_a_crowd_after_a_pause_waits_for_one_question() -> None:
    ledger = Ledger(sold_out=True)
    memory = await lapsed(ledger)
    assert await crowd_after_a_pause(memory, ledger) == [409] * 100
    assert ledger.asked == 1
    # Confirmed for another ttl: answered from memory again, without a question.
    answer = memory.answer("7")
    assert answer is not None and answer.status == 409
    assert ledger.asked == 1
    await memory.close()


async def test_a_number_freed_meanwhile_sends_the_crowd_to_the_strategy() -> None:
    ledger = Ledger(sold_out=False)
    memory = await lapsed(ledger)
    assert await crowd_after_a_pause(memory, ledger) == [None] * 100
    assert ledger.asked == 1
    # Dropped: the next request asks the strategy without a question to the ledger.
    assert await memory.confirm("7") is None
    assert ledger.asked == 1
    await memory.close()


async def test_a_cancellation_during_the_question_wins() -> None:
    ledger = Ledger(sold_out=True)
    memory = await lapsed(ledger)
    waiting = asyncio.create_task(memory.confirm("7"))
    await asyncio.sleep(0)
    memory.forget("7")
    ledger.answer.set()
    assert await waiting is None
    assert memory.answer("7") is None
    await memory.close()


async def test_a_schedule_never_sold_out_asks_nothing() -> None:
    ledger = Ledger(sold_out=True)
    memory = SoldOutMemory(TTL, ledger.still_sold_out)
    assert await memory.confirm("7") is None
    assert ledger.asked == 0
    await memory.close()
