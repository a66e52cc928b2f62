"""The run checks of invariants 8-10 and the money totals (loadtest/client/lifecycle.py),
against a real ledger: a clean run passes, and each way of breaking one is caught."""

from __future__ import annotations

import pytest

from core.booking import BookingService
from core.domain import Booking
from core.queries import query
from core.stores import Stores
from loadtest.client.lifecycle import check_lifecycle
from strategies.pg_pessimistic import PgPessimistic
from tests.conftest import StrategyFactory
from tests.scenarios import HOSPITAL, VISIT_DATE, create, schedule_in

FEE = 2500


@pytest.fixture
async def plain(make_strategy: StrategyFactory, stores: Stores) -> BookingService:
    return BookingService(await make_strategy(PgPessimistic), stores.ledger)


async def pay(stores: Stores, booking: Booking) -> None:
    """The statements a succeeded notice runs: the charge, the booking, its payment view."""
    async with stores.pg.acquire() as conn, conn.transaction():
        payment = await conn.fetchrow(query("insert_payment"), HOSPITAL, booking.id, "sandbox", FEE)
        await conn.fetch(query("charge_payment"), HOSPITAL, payment["id"], "co", "ch")
        await conn.fetch(query("book_paid"), HOSPITAL, booking.id)
        await conn.fetch(query("sync_booking_payment"), HOSPITAL, booking.id)


async def paid_and_held(plain: BookingService, stores: Stores) -> tuple[Booking, Booking]:
    (sid,) = await create(plain, schedule_in(capacity=4, fee_cents=FEE))
    paid = (await plain.book("alice", sid)).booking
    held = (await plain.book("bob", sid)).booking
    await pay(stores, paid)
    return paid, held


async def test_a_clean_run_passes_with_its_money_totals(
    plain: BookingService, stores: Stores
) -> None:
    await paid_and_held(plain, stores)

    verdict = await check_lifecycle(stores.pg, HOSPITAL)

    assert verdict.ok, verdict.report()
    assert (verdict.totals.charged, verdict.totals.kept_fees, verdict.totals.charges) == (
        FEE,
        FEE,
        1,
    )
    assert verdict.totals.error_cents == 0


async def test_money_taken_without_a_booking_to_keep_it_is_caught(
    plain: BookingService, stores: Stores
) -> None:
    paid, _ = await paid_and_held(plain, stores)
    # Cancelled without owing the refund: the charge is kept by nothing.
    await stores.pg.fetch(query("cancel_by_patient"), HOSPITAL, paid.id)

    verdict = await check_lifecycle(stores.pg, HOSPITAL)

    assert (verdict.money_violations, verdict.money_errors) == (1, 1)
    assert verdict.totals.error_cents == FEE
    assert not verdict.ok


async def test_a_hold_kept_past_its_expiry_and_slack_is_caught(
    plain: BookingService, stores: Stores
) -> None:
    _, held = await paid_and_held(plain, stores)
    await stores.pg.execute(
        "UPDATE bookings SET hold_expires_at = now() - interval '6 seconds' "
        "WHERE hospital_id = $1 AND id = $2",
        HOSPITAL,
        held.id,
    )

    assert (await check_lifecycle(stores.pg, HOSPITAL)).lapse_violations == 1
    # Within the slack it is not yet a violation.
    assert (await check_lifecycle(stores.pg, HOSPITAL, lapse_slack=60)).ok


async def test_a_settlement_counted_twice_and_a_false_breach_are_caught(
    plain: BookingService, stores: Stores
) -> None:
    _, held = await paid_and_held(plain, stores)
    await stores.pg.execute(
        "INSERT INTO settlements (hospital_id, visit_date, no_shows) VALUES ($1, $2, 1)",
        HOSPITAL,
        VISIT_DATE,
    )
    await stores.pg.execute(
        "INSERT INTO breaches (hospital_id, booking_id, patient_id, kind, weight) "
        "VALUES ($1, $2, 'bob', 'cancellation', 1)",
        HOSPITAL,
        held.id,
    )

    verdict = await check_lifecycle(stores.pg, HOSPITAL)

    assert verdict.settlement_violations == 2, verdict.report()
    assert any("counts 1 no-shows, the bookings 0" in d for d in verdict.details)


async def test_a_database_may_set_the_payment_window_in_seconds(
    plain: BookingService, stores: Stores
) -> None:
    """The dev/test knob the lifecycle benchmark lapses holds with (README)."""
    (sid,) = await create(plain, schedule_in(capacity=2, fee_cents=FEE))
    database = await stores.pg.fetchval("SELECT current_database()")
    await stores.pg.execute(
        f"ALTER DATABASE \"{database}\" SET slotrush.payment_window_seconds = '3'"
    )
    await stores.pg.expire_connections()  # the setting reaches new sessions only

    booking = (await plain.book("alice", sid)).booking

    window = await stores.pg.fetchval(
        "SELECT extract(epoch FROM hold_expires_at - created_at) FROM bookings "
        "WHERE hospital_id = $1 AND id = $2",
        HOSPITAL,
        booking.id,
    )
    # 3 seconds instead of the hospital's 15 minutes (the two times are taken apart).
    assert 2 < window < 60
