"""A hospital's booking terms are read once per hospital however many bookings ask for them
at once, and a change made meanwhile is never kept behind (core/terms.py)."""

from __future__ import annotations

import asyncio

import asyncpg

from core.stores import Stores
from core.terms import BookingTerms, TermsCache


class CountedTerms(TermsCache):
    """The real reads, counted, each answered only once `go` is set."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.reads = 0
        self.go = asyncio.Event()
        self.have_read = asyncio.Event()

    async def _read(self, hospital_ids: list[str]) -> dict[str, BookingTerms]:
        self.reads += 1
        read = await super()._read(hospital_ids)
        self.have_read.set()
        await self.go.wait()
        return read


async def hospital(stores: Stores, zone: str) -> str:
    await stores.pg.execute(
        "INSERT INTO hospitals (id, timezone) VALUES ('h-terms', $1)"
        " ON CONFLICT (id) DO UPDATE SET timezone = EXCLUDED.timezone",
        zone,
    )
    return "h-terms"


async def test_a_crowd_waits_for_one_read(stores: Stores) -> None:
    hospital_id = await hospital(stores, "Asia/Shanghai")
    terms = CountedTerms(stores.pg)
    crowd = [asyncio.create_task(terms.one(hospital_id)) for _ in range(50)]
    await asyncio.sleep(0)
    terms.go.set()
    assert {str(t.zone) for t in await asyncio.gather(*crowd)} == {"Asia/Shanghai"}
    assert terms.reads == 1
    await terms.one(hospital_id)
    assert terms.reads == 1


async def test_a_read_begun_before_a_change_is_not_kept(stores: Stores) -> None:
    hospital_id = await hospital(stores, "Asia/Shanghai")
    terms = CountedTerms(stores.pg)
    before = asyncio.create_task(terms.one(hospital_id))
    await terms.have_read.wait()
    await hospital(stores, "Europe/Paris")
    terms.forget(hospital_id)
    terms.go.set()
    assert str((await before).zone) == "Asia/Shanghai"
    assert str((await terms.one(hospital_id)).zone) == "Europe/Paris"
    assert terms.reads == 2
