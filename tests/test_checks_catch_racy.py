"""The invariant checks can fail: the crowds of the concurrency suite, run against the racy
strategy on a ledger without its last-line constraints, are reported as broken, while every
real strategy on the same ledger is not. Checks no race can trip are tripped by hand."""

from __future__ import annotations

import dataclasses

import asyncpg
import pytest

from core.booking import BookingService
from core.domain import Booking, Code
from core.stores import Stores
from strategies import strategy_class
from strategies.base import InventoryStrategy
from tests.conftest import StrategyFactory
from tests.invariants import Observed, audit_violations, violations
from tests.racy_strategy import RacyStrategy
from tests.scenarios import (
    contention_answers,
    create,
    double_submit,
    flash_crowd,
    patients_race_schedules,
    schedule_in,
)

# The partial unique indexes that would refuse the racy strategy's duplicates.
LAST_LINE_INDEXES = ("bookings_held_number", "bookings_held_patient")


@pytest.fixture
def keep_constraints() -> bool:
    """Overridden by parametrize for the tests that want the real schema."""
    return False


@pytest.fixture
async def test_database_url(test_database_url: str, keep_constraints: bool) -> str:
    """This module's databases, unless a test says otherwise, lack the last line of defence."""
    if not keep_constraints:
        conn = await asyncpg.connect(test_database_url)
        try:
            for index in LAST_LINE_INDEXES:
                await conn.execute(f"DROP INDEX {index}")
        finally:
            await conn.close()
    return test_database_url


@pytest.fixture
async def racy_service(make_strategy: StrategyFactory, stores: Stores) -> BookingService:
    strategy: InventoryStrategy = await make_strategy(RacyStrategy)
    return BookingService(strategy, stores.ledger)


def mentions(found: list[str], *phrases: str) -> list[str]:
    """The phrases no violation mentions."""
    return [p for p in phrases if not any(p in violation for violation in found)]


# --- the racy strategy breaks every invariant a race can break -----------------------------


def test_racy_strategy_is_served_by_module_and_class() -> None:
    assert strategy_class("tests.racy_strategy:RacyStrategy") is RacyStrategy


async def test_racy_strategy_is_correct_one_request_at_a_time(
    racy_service: BookingService, stores: Stores
) -> None:
    observed = Observed()
    (sid,) = await create(racy_service, schedule_in(capacity=3))
    (same_department,) = await create(racy_service, schedule_in(doctor_id="doc2", capacity=3))
    for patient in ("a", "b", "c", "d"):
        await observed.book(racy_service, patient, sid)
    await observed.book(racy_service, "a", sid)
    await observed.book(racy_service, "a", same_department)
    await observed.cancel(racy_service, "a", observed.held[0].id)
    await observed.book(racy_service, "e", sid)

    refusals = {Code.SOLD_OUT.value, Code.ALREADY_BOOKED.value, Code.DEPARTMENT_LIMIT.value}
    assert await violations(stores.ledger, observed, allowed=refusals) == []
    assert set(observed.codes()) == {"booked", *refusals}


async def test_checks_catch_the_racy_flash_crowd(
    racy_service: BookingService, stores: Stores
) -> None:
    observed = Observed()
    await flash_crowd(racy_service, observed, capacity=10, crowd=100)

    found = await violations(stores.ledger, observed, allowed={Code.SOLD_OUT.value})
    assert mentions(found, "oversold", "duplicate numbers", "number confirmed twice") == []


async def test_checks_catch_the_racy_double_submit(
    racy_service: BookingService, stores: Stores
) -> None:
    observed = Observed()
    await double_submit(racy_service, observed, patients=3, repeats=10)

    found = await violations(stores.ledger, observed, allowed={Code.ALREADY_BOOKED.value})
    assert mentions(found, "two bookings of one schedule", "patient confirmed twice") == []


@pytest.mark.parametrize("keep_constraints", [False, True], ids=["no-constraints", "real-schema"])
async def test_checks_catch_racy_limits_where_no_constraint_reaches(
    racy_service: BookingService, stores: Stores
) -> None:
    observed = Observed()
    await patients_race_schedules(racy_service, observed, departments=["d1"] * 4, patients=3)

    found = await violations(stores.ledger, observed, allowed={Code.DEPARTMENT_LIMIT.value})
    assert mentions(found, "limit violations") == []


@pytest.mark.parametrize("keep_constraints", [True])
async def test_real_schema_refuses_the_racy_duplicates(
    racy_service: BookingService, stores: Stores
) -> None:
    observed = Observed()
    await flash_crowd(racy_service, observed, capacity=10, crowd=100)

    # The constraints hold the line; the refused writes surface as answers nobody expects.
    assert audit_violations(await stores.ledger.audit()) == []
    found = await violations(stores.ledger, observed, allowed={Code.SOLD_OUT.value})
    assert mentions(found, "answers 'busy'") == []


# --- the real strategies pass the same crowds on the same constraint-less ledger -----------


async def test_real_strategies_pass_the_same_crowds_without_constraints(
    service: BookingService, stores: Stores, strategy_name: str
) -> None:
    observed = Observed()
    await flash_crowd(service, observed, capacity=10, crowd=100)
    await double_submit(service, observed, patients=3, repeats=10)
    await patients_race_schedules(service, observed, departments=["d1"] * 4, patients=3)

    allowed = contention_answers(
        strategy_name, Code.SOLD_OUT, Code.ALREADY_BOOKED, Code.DEPARTMENT_LIMIT
    )
    assert await violations(stores.ledger, observed, allowed=allowed) == []


# --- checks no race trips, tripped by hand -------------------------------------------------


async def booked(service: BookingService, observed: Observed, patient: str, sid: int) -> Booking:
    answer = await observed.book(service, patient, sid)
    assert isinstance(answer, Booking)
    return answer


async def test_checks_catch_a_lost_confirmation(
    racy_service: BookingService, stores: Stores
) -> None:
    observed = Observed()
    (sid,) = await create(racy_service, schedule_in(capacity=3))
    kept = await booked(racy_service, observed, "a", sid)
    await booked(racy_service, observed, "b", sid)
    # A 201 for a booking the ledger never stored, of a number the schedule does not have.
    ghost = dataclasses.replace(
        kept, id=kept.id + 1000, patient_id="c", number=4, verification_code="GHOST999"
    )
    observed.confirmed[ghost.id] = ghost
    # And one cancelled behind its holder's back.
    await stores.pg.execute(
        "UPDATE bookings SET status = 'cancelled', cancelled_at = now() WHERE id = $1", kept.id
    )

    found = await violations(stores.ledger, observed)
    expected = (f"{ghost.id} is missing", "outside 1..3", f"booking {kept.id} is cancelled")
    assert mentions(found, *expected) == []


async def test_checks_catch_a_booking_no_client_was_given(
    racy_service: BookingService, stores: Stores
) -> None:
    observed = Observed()
    (sid,) = await create(racy_service, schedule_in(capacity=3))
    await booked(racy_service, observed, "a", sid)
    # A number taken without a confirmation reaching its client (a leak).
    await racy_service.book("b", sid)

    found = await violations(stores.ledger, observed)
    assert mentions(found, "2 active bookings, clients hold 1") == []


async def test_checks_catch_sold_out_with_numbers_free(
    racy_service: BookingService, stores: Stores
) -> None:
    observed = Observed()
    (sid,) = await create(racy_service, schedule_in(capacity=3))
    await booked(racy_service, observed, "a", sid)
    observed.answers[(sid, Code.SOLD_OUT.value)] += 1  # as if a client had been turned away

    found = await violations(stores.ledger, observed, allowed={Code.SOLD_OUT.value})
    assert mentions(found, "answered sold_out with 2 numbers still free") == []
