from __future__ import annotations
import asyncio, re
import asyncpg
import pytest
from core.booking import BookingService
from core.errors import SlotrushError
from core.stores import Stores
from tests.scenarios import create, schedule_in
from core.domain import Code

from strategies.pg_skip_locked import PgSkipLocked
from core import ledger
from core.queries import query as q
from core.domain import Rejected

class Fixed(PgSkipLocked):
    name = "pg-skip-locked-fixed"
    async def _book(self, req):
        async with self.stores.pg.acquire() as conn, conn.transaction():
            rejected = await ledger.check_patient_day(conn, req)
            if rejected is not None:
                return rejected
            attempt = conn.transaction()
            await attempt.start()
            number = await conn.fetchval(q("claim_free_number"), req.schedule.id)
            if number is None:
                await attempt.rollback()
                number = await conn.fetchval(q("claim_free_number_waiting"), req.schedule.id)
            else:
                await attempt.commit()
            if number is None:
                return Rejected(Code.SOLD_OUT)
            booking = await ledger.insert_booking(conn, req, number)
            return booking if booking is not None else Rejected(Code.IDEMPOTENCY_CONFLICT)

@pytest.fixture
async def service(make_strategy, stores):
    return BookingService(await make_strategy(Fixed), stores.ledger)

@pytest.mark.parametrize("rep", range(10))
async def test_stress(service: BookingService, stores: Stores, rep: int, test_database_url: str) -> None:
    (sid,) = await create(service, schedule_in(capacity=5))
    details = []
    snaps = []
    stop = False
    mon = await asyncpg.connect(test_database_url)
    async def monitor():
        while not stop:
            rows = await mon.fetch("select pid, backend_xid::text, wait_event_type, wait_event, pg_blocking_pids(pid) as bl, left(query, 90) as q from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")
            if rows:
                snaps.append([dict(r) for r in rows])
            await asyncio.sleep(0.05)
    mt = asyncio.create_task(monitor())
    async def patient(name):
        for r in range(8):
            try:
                b = (await service.book(name, sid)).booking
            except SlotrushError as exc:
                if exc.code is Code.BUSY:
                    details.append(("book", getattr(exc.__cause__, "detail", None)))
                continue
            if r < 7:
                try:
                    await service.cancel(name, b.id)
                except SlotrushError as exc:
                    details.append(("cancel", getattr(exc.__cause__, "detail", None)))
    await asyncio.gather(*(patient(f"p{i}") for i in range(30)))
    stop = True
    await mt
    await mon.close()
    if details:
        print("DL", details[0])
        pids = {int(p) for p in re.findall(r"process (\d+)", details[0][1] or "")}
        for snap in snaps:
            if pids <= {r["pid"] for r in snap}:
                for r in snap:
                    if r["pid"] in pids:
                        print("SNAP", r)
                break
    assert details == []
