"""The strategy contract: every strategy in the registry, through the booking service, answers
every rule of API.md the same way."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable

import pytest

from core.booking import BookingService
from core.domain import Booking, BookingStatus, Code, Period, Rules, ScheduleStatus
from core.errors import SlotrushError
from core.stores import Stores
from tests.conftest import WITH_CLUSTER, Clock, strategy_cases
from tests.invariants import Observed, violations
from tests.scenarios import HOSPITAL, VISIT_DATE, create, schedule_in

# The Redis gates run this suite on a Redis Cluster too.
strategy_case = strategy_cases(WITH_CLUSTER)


async def refusal(call: Awaitable[object]) -> Code:
    """The stable code a call was refused with; fails the test if it was not refused."""
    with pytest.raises(SlotrushError) as refused:
        await call
    return refused.value.code


async def book(service: BookingService, patient: str, schedule_id: int) -> Booking:
    return (await service.book(patient, schedule_id)).booking


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- booking -------------------------------------------------------------------------------


async def test_book_returns_a_booked_number(service: BookingService) -> None:
    (sid,) = await create(service, schedule_in(capacity=3, department_id="cardio"))

    outcome = await service.book("alice", sid)

    b = outcome.booking
    assert not outcome.replayed
    assert (b.schedule_id, b.patient_id, b.hospital_id) == (sid, "alice", HOSPITAL)
    assert (b.department_id, b.visit_date) == ("cardio", VISIT_DATE)
    assert 1 <= b.number <= 3
    assert len(b.verification_code) >= 6
    assert b.status is BookingStatus.BOOKED
    assert b.cancelled_at is None
    assert await service.booking("alice", b.id) == b


async def test_full_schedule_is_sold_out(service: BookingService) -> None:
    (sid,) = await create(service, schedule_in(capacity=2))
    taken = {(await book(service, p, sid)).number for p in ("a", "b")}

    assert taken == {1, 2}
    assert await refusal(service.book("c", sid)) is Code.SOLD_OUT


async def test_unknown_schedule(service: BookingService) -> None:
    assert await refusal(service.book("alice", 987654)) is Code.SCHEDULE_NOT_FOUND


async def test_not_open_before_opens_at(service: BookingService, stores: Stores) -> None:
    (sid,) = await create(service, schedule_in(opens_at=now() + dt.timedelta(hours=1)))

    assert await refusal(service.book("alice", sid)) is Code.NOT_OPEN
    assert (await stores.ledger.audit()).schedules[0].booked == 0


async def test_already_booked_on_the_same_schedule(service: BookingService) -> None:
    (sid,) = await create(service, schedule_in(capacity=5))
    await book(service, "alice", sid)

    assert await refusal(service.book("alice", sid)) is Code.ALREADY_BOOKED


# --- closing -------------------------------------------------------------------------------

# The first instant of the day after the visit in a hospital without a zone of its own (UTC).
DAY_AFTER = dt.datetime.combine(VISIT_DATE + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


async def test_a_schedule_closes_once_its_visit_date_has_passed(
    service: BookingService, stores: Stores, clock: Clock
) -> None:
    (sid,) = await create(service, schedule_in(capacity=3))
    first = await service.book("alice", sid, "key-1")
    clock.move_to(DAY_AFTER - dt.timedelta(minutes=1))
    assert (await service.book("bob", sid)).booking.status is BookingStatus.BOOKED

    clock.move_to(DAY_AFTER)
    assert await refusal(service.book("carol", sid)) is Code.SCHEDULE_CLOSED
    assert (await service.schedule_view(sid)).status is ScheduleStatus.CLOSED
    # The retry of a booking made while it was open still gets that booking back.
    assert (await service.book("alice", sid, "key-1")).booking == first.booking
    assert (await stores.ledger.audit()).schedules[0].booked == 2


async def test_a_sold_out_schedule_that_closes_is_closed_not_sold_out(
    service: BookingService, clock: Clock
) -> None:
    (sid,) = await create(service, schedule_in(capacity=1))
    await book(service, "alice", sid)
    assert await refusal(service.book("bob", sid)) is Code.SOLD_OUT
    assert await service.still_sold_out(sid)

    clock.move_to(DAY_AFTER)
    assert await refusal(service.book("bob", sid)) is Code.SCHEDULE_CLOSED
    assert (await service.schedule_view(sid)).status is ScheduleStatus.CLOSED
    # The sold-out fast path stops answering for it.
    assert not await service.still_sold_out(sid)


# --- blacklist -----------------------------------------------------------------------------


async def test_blacklisted_patient_is_refused_until_lifted(service: BookingService) -> None:
    (sid,) = await create(service, schedule_in(capacity=5))
    await service.put_blacklist(HOSPITAL, "mallory", now() + dt.timedelta(days=30))

    assert await refusal(service.book("mallory", sid)) is Code.BLACKLISTED
    await book(service, "alice", sid)  # only mallory is refused

    await service.delete_blacklist(HOSPITAL, "mallory")
    assert (await book(service, "mallory", sid)).status is BookingStatus.BOOKED


async def test_blacklist_of_another_hospital_does_not_apply(service: BookingService) -> None:
    (sid,) = await create(service, schedule_in(capacity=5))
    await service.put_blacklist("other-hospital", "mallory", now() + dt.timedelta(days=30))

    assert (await book(service, "mallory", sid)).status is BookingStatus.BOOKED


async def test_expired_blacklist_entry_does_not_block(service: BookingService) -> None:
    (sid,) = await create(service, schedule_in(capacity=5))
    await service.put_blacklist(HOSPITAL, "mallory", now() - dt.timedelta(minutes=1))

    assert (await book(service, "mallory", sid)).status is BookingStatus.BOOKED


# --- per-day rules -------------------------------------------------------------------------


async def test_daily_limit_across_departments(service: BookingService) -> None:
    ids = await create(
        service,
        *(schedule_in(department_id=f"d{i}", doctor_id=f"doc{i}", capacity=5) for i in range(3)),
        schedule_in(department_id="d0", visit_date=VISIT_DATE + dt.timedelta(days=1)),
        schedule_in(hospital_id="h2", department_id="d0"),
    )
    first, second, third, next_day, other_hospital = ids
    await book(service, "alice", first)
    await book(service, "alice", second)

    assert await refusal(service.book("alice", third)) is Code.DAILY_LIMIT
    # The limit is per hospital and per date.
    await book(service, "alice", next_day)
    await book(service, "alice", other_hospital)


async def test_department_limit(service: BookingService) -> None:
    cardio_am, cardio_pm, neuro = await create(
        service,
        schedule_in(department_id="cardio", capacity=5),
        schedule_in(department_id="cardio", doctor_id="doc2", period=Period.PM, capacity=5),
        schedule_in(department_id="neuro", capacity=5),
    )
    await book(service, "alice", cardio_am)

    assert await refusal(service.book("alice", cardio_pm)) is Code.DEPARTMENT_LIMIT
    await book(service, "alice", neuro)


async def test_custom_rules(service: BookingService) -> None:
    await service.put_rules(HOSPITAL, Rules(max_per_day=3, max_per_department_per_day=2))
    ids = await create(
        service,
        *(schedule_in(department_id="d1", doctor_id=f"doc{i}", capacity=5) for i in range(3)),
        *(schedule_in(department_id="d2", doctor_id=f"doc{i}", capacity=5) for i in range(2)),
    )
    d1_a, d1_b, d1_c, d2_a, d2_b = ids
    await book(service, "alice", d1_a)
    await book(service, "alice", d1_b)

    assert await refusal(service.book("alice", d1_c)) is Code.DEPARTMENT_LIMIT
    await book(service, "alice", d2_a)
    assert await refusal(service.book("alice", d2_b)) is Code.DAILY_LIMIT


async def test_rules_count_only_active_bookings(service: BookingService) -> None:
    first, second = await create(
        service,
        schedule_in(capacity=5),
        schedule_in(doctor_id="doc2", period=Period.PM, capacity=5),
    )
    held = await book(service, "alice", first)
    await service.cancel("alice", held.id)

    await book(service, "alice", second)
    assert await refusal(service.book("alice", first)) is Code.DEPARTMENT_LIMIT


# --- cancelling ----------------------------------------------------------------------------


async def test_cancelled_number_comes_back_for_someone_else(service: BookingService) -> None:
    (sid,) = await create(service, schedule_in(capacity=3))
    held = [await book(service, p, sid) for p in ("a", "b", "c")]
    middle = held[1]

    cancelled = await service.cancel("b", middle.id)

    assert cancelled.status is BookingStatus.CANCELLED
    assert cancelled.cancelled_at is not None
    assert cancelled.number == middle.number
    rebooked = await book(service, "d", sid)
    assert rebooked.number == middle.number
    assert await refusal(service.book("e", sid)) is Code.SOLD_OUT


async def test_cancelling_a_cancelled_booking_returns_it_unchanged(
    service: BookingService,
) -> None:
    (sid,) = await create(service, schedule_in())
    held = await book(service, "alice", sid)
    first = await service.cancel("alice", held.id)

    assert await service.cancel("alice", held.id) == first
    await book(service, "bob", sid)  # the number went back exactly once
    assert await service.cancel("alice", held.id) == first


async def test_another_patients_booking_is_not_found(service: BookingService) -> None:
    (sid,) = await create(service, schedule_in())
    held = await book(service, "alice", sid)

    assert await refusal(service.cancel("mallory", held.id)) is Code.BOOKING_NOT_FOUND
    assert await refusal(service.booking("mallory", held.id)) is Code.BOOKING_NOT_FOUND
    assert await refusal(service.cancel("alice", held.id + 1000)) is Code.BOOKING_NOT_FOUND
    assert (await service.booking("alice", held.id)).status is BookingStatus.BOOKED


async def test_cancel_window_closes_at_the_cutoff(service: BookingService, clock: Clock) -> None:
    await service.put_rules(HOSPITAL, Rules(cancel_cutoff_minutes=60))
    (sid,) = await create(service, schedule_in(capacity=3))
    early, late = [await book(service, patient, sid) for patient in ("alice", "bob")]
    # An am session of a hospital without a time zone of its own (UTC) starts at 08:00 UTC.
    starts = dt.datetime.combine(VISIT_DATE, dt.time(8, 0), tzinfo=dt.UTC)

    clock.move_to(starts - dt.timedelta(minutes=61))
    assert (await service.cancel("alice", early.id)).status is BookingStatus.CANCELLED
    clock.move_to(starts - dt.timedelta(minutes=59))
    assert await refusal(service.cancel("bob", late.id)) is Code.CANCEL_WINDOW_CLOSED
    assert (await service.booking("bob", late.id)).status is BookingStatus.BOOKED
    # Past the cutoff, and even once the session has begun, booking is still allowed.
    clock.move_to(starts + dt.timedelta(hours=1))
    assert (await book(service, "carol", sid)).status is BookingStatus.BOOKED


# --- idempotency ---------------------------------------------------------------------------


async def test_idempotent_repeat_returns_the_same_booking(
    service: BookingService, stores: Stores
) -> None:
    (sid,) = await create(service, schedule_in(capacity=5))
    first = await service.book("alice", sid, "key-1")

    again = await service.book("alice", sid, "key-1")

    assert not first.replayed
    assert again.replayed
    assert again.booking == first.booking
    assert (await stores.ledger.audit()).schedules[0].booked == 1


async def test_idempotency_key_belongs_to_its_patient(service: BookingService) -> None:
    (sid,) = await create(service, schedule_in(capacity=5))
    alice = await service.book("alice", sid, "shared-key")

    bob = await service.book("bob", sid, "shared-key")

    assert not bob.replayed
    assert bob.booking.id != alice.booking.id


async def test_idempotency_key_on_another_schedule_conflicts(service: BookingService) -> None:
    first, second = await create(
        service, schedule_in(capacity=5), schedule_in(department_id="d2", capacity=5)
    )
    await service.book("alice", first, "key-1")

    assert await refusal(service.book("alice", second, "key-1")) is Code.IDEMPOTENCY_CONFLICT


async def test_idempotency_key_is_the_patients_at_every_hospital(
    service: BookingService,
) -> None:
    here, elsewhere = await create(
        service, schedule_in(capacity=5), schedule_in(hospital_id="h2", capacity=5)
    )
    await service.book("alice", here, "key-1")

    # API.md v1: a key reused for another request conflicts, whichever hospital it names.
    assert await refusal(service.book("alice", elsewhere, "key-1")) is Code.IDEMPOTENCY_CONFLICT


async def test_concurrent_requests_with_one_key_book_once(
    service: BookingService, stores: Stores
) -> None:
    (sid,) = await create(service, schedule_in(capacity=5))
    observed = Observed()

    answers = await asyncio.gather(
        *(observed.book(service, "alice", sid, "key-1") for _ in range(10))
    )

    assert len(observed.confirmed) == 1, answers
    (booking,) = observed.confirmed.values()
    assert answers == [booking] * 10
    assert await violations(stores.ledger, observed, allowed=()) == []
