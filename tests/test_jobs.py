"""The durable jobs (core.jobs) run by a real job runner over the test's database: hold
expiry within its bound under every strategy (invariant 9), day-end settlement queued when a
hospital's settle_at passes, queued items once per name, and pgqueuer's schema as our
migrations install it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from pgqueuer.db import AsyncpgPoolDriver
from pgqueuer.queries import Queries

from core.booking import BookingService
from core.domain import BookingStatus, Code
from core.errors import SlotrushError
from core.jobs import settle_day, settle_due
from core.jobs.job import JobContext, enqueue
from core.jobs.runner import JobRunner
from core.lifecycle.settlement import Due
from core.payments.providers import Providers
from core.stores import Stores
from server.courier import WebhookCourier
from strategies.base import InventoryStrategy
from strategies.pg_pessimistic import PgPessimistic
from tests.conftest import StrategyFactory
from tests.polling import eventually
from tests.scenarios import HOSPITAL, create, schedule_in, utc_today

# Invariant 9: a lapsed hold's number is free again within its expiry plus this.
EXPIRY_BOUND = 5.0


@contextlib.asynccontextmanager
async def running(stores: Stores, strategy: InventoryStrategy) -> AsyncIterator[JobRunner]:
    async with WebhookCourier(stores.settings.webhook_timeout) as courier:
        jobs = JobRunner(stores, strategy, courier)
        jobs.start()
        try:
            yield jobs
        finally:
            await jobs.close()


@pytest.fixture
async def runner(stores: Stores, strategy: InventoryStrategy) -> AsyncIterator[JobRunner]:
    """A job runner releasing through the strategy of the test."""
    async with running(stores, strategy) as jobs:
        yield jobs


@pytest.fixture
async def one_strategy(make_strategy: StrategyFactory) -> InventoryStrategy:
    """For jobs that free no numbers: any strategy will do."""
    return await make_strategy(PgPessimistic)


@pytest.fixture
def plain_service(one_strategy: InventoryStrategy, stores: Stores) -> BookingService:
    return BookingService(one_strategy, stores.ledger)


@pytest.fixture
async def plain_runner(stores: Stores, one_strategy: InventoryStrategy) -> AsyncIterator[JobRunner]:
    async with running(stores, one_strategy) as jobs:
        yield jobs


async def test_the_migrations_install_the_schema_pgqueuer_expects(stores: Stores) -> None:
    plan = await Queries(AsyncpgPoolDriver(stores.pg)).plan_upgrade()
    assert plan.statements == ()


async def test_a_lapsed_hold_is_bookable_again_within_its_expiry_plus_five_seconds(
    service: BookingService, stores: Stores, runner: JobRunner
) -> None:
    await _a_lapsed_hold_is_booked_again_in_time(service, stores)


async def test_an_expiry_tick_left_by_a_dead_process_holds_expiry_back_seconds_only(
    plain_service: BookingService, stores: Stores, one_strategy: InventoryStrategy
) -> None:
    # A runner registers the tick; then a process dies in the middle of one: pgqueuer's
    # table says it is claimed, and its heartbeat stopped 10 s ago (pgqueuer alone would
    # wait 20 s more, past invariant 9's bound).
    async with running(stores, one_strategy):

        async def registered() -> bool:
            return bool(
                await stores.pg.fetchval(
                    "SELECT count(*) FROM pgqueuer_schedules WHERE entrypoint = 'expire_holds'"
                )
            )

        await eventually(registered, 30, "the runner registers the expiry tick")
    await stores.pg.execute(
        "UPDATE pgqueuer_schedules SET status = 'picked', heartbeat = now() - interval '10 s'"
        " WHERE entrypoint = 'expire_holds'"
    )
    async with running(stores, one_strategy):
        await _a_lapsed_hold_is_booked_again_in_time(plain_service, stores)


async def _a_lapsed_hold_is_booked_again_in_time(service: BookingService, stores: Stores) -> None:
    """A paid schedule's one number held, its hold lapsed now: another patient books that
    number within invariant 9's bound, and the hold reads expired."""
    (paid,) = await create(service, schedule_in(capacity=1, fee_cents=2500))
    hold = (await service.book("alice", paid)).booking
    with pytest.raises(SlotrushError) as refused:
        await service.book("bob", paid)
    assert refused.value.code is Code.SOLD_OUT

    lapsed_at = await stores.pg.fetchval(
        "UPDATE bookings SET hold_expires_at = now() WHERE id = $1 RETURNING hold_expires_at",
        hold.id,
    )
    started = time.monotonic()
    while True:
        try:
            taken = (await service.book("bob", paid)).booking
            break
        except SlotrushError as exc:
            assert exc.code is Code.SOLD_OUT
            assert time.monotonic() - started < EXPIRY_BOUND, "the hold's number never came back"
            await asyncio.sleep(0.1)

    assert taken.number == hold.number
    expired = await stores.ledger.get_booking(hold.id)
    assert expired is not None and expired.status is BookingStatus.EXPIRED
    assert expired.expired_at is not None
    assert (expired.expired_at - lapsed_at).total_seconds() < EXPIRY_BOUND


async def test_settle_due_queues_the_dates_whose_settle_time_passed(
    plain_service: BookingService, stores: Stores, one_strategy: InventoryStrategy
) -> None:
    service = plain_service
    due, not_yet = await create(
        service,
        schedule_in(capacity=3, visit_date=utc_today()),
        schedule_in(capacity=3, visit_date=utc_today(), hospital_id="h-later", doctor_id="doc2"),
    )
    await service.book("alice", due)
    await service.book("bob", not_yet)
    # h1 settles at 00:00 UTC, passed today; h-later at 23:00 twelve hours behind UTC, which
    # is tomorrow in UTC.
    await stores.pg.execute("UPDATE hospitals SET settle_at = '00:00' WHERE id = $1", HOSPITAL)
    await stores.pg.execute(
        "UPDATE hospitals SET settle_at = '23:00', timezone = 'Etc/GMT+12' WHERE id = 'h-later'"
    )

    # Never entered: settle_due pays and posts nothing.
    context = JobContext(
        stores, one_strategy, Providers.from_settings(stores.settings), WebhookCourier(1.0)
    )
    await settle_due.JOB.run(context, None)
    await settle_due.JOB.run(context, None)  # a second tick before the first item ran

    queued = await stores.pg.fetch(
        "SELECT entrypoint, dedupe_key FROM pgqueuer WHERE status = 'queued'"
    )
    assert [tuple(row) for row in queued] == [
        ("settle_day", f"settle_day/{HOSPITAL}/{utc_today()}")
    ]


async def test_a_queued_settlement_runs_once_in_the_runner(
    plain_service: BookingService, stores: Stores, plain_runner: JobRunner
) -> None:
    service = plain_service
    (sid,) = await create(service, schedule_in(capacity=3, visit_date=utc_today()))
    booking = (await service.book("alice", sid)).booking
    item = Due(HOSPITAL, utc_today())
    async with stores.pg.acquire() as conn, conn.transaction():
        assert await enqueue(conn, settle_day.JOB, settle_day.payload(item), item="one")
        assert not await enqueue(conn, settle_day.JOB, settle_day.payload(item), item="one")

    async def finished() -> bool:
        return bool(await stores.pg.fetchval("SELECT finished_at FROM settlements"))

    await eventually(finished, 10, "the queued settlement finishes")
    row = await stores.pg.fetchrow("SELECT * FROM settlements")
    assert (row["hospital_id"], row["visit_date"], row["no_shows"]) == (HOSPITAL, utc_today(), 1)
    settled = await stores.pg.fetchval("SELECT settled_at FROM bookings WHERE id = $1", booking.id)
    assert settled is not None


async def test_an_item_enqueued_in_a_transaction_rolled_back_never_runs(stores: Stores) -> None:
    item = Due(HOSPITAL, utc_today())
    with pytest.raises(RuntimeError):
        async with stores.pg.acquire() as conn, conn.transaction():
            await enqueue(conn, settle_day.JOB, settle_day.payload(item), item="gone")
            raise RuntimeError("the change it came with failed")
    assert await stores.pg.fetchval("SELECT count(*) FROM pgqueuer") == 0
