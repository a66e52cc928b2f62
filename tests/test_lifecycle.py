"""The registration lifecycle (API.md 1.1) under every strategy: holds of paid schedules,
their expiry, cancelling, suspension, check-in and day-end settlement, every transition the
table of booking states forbids (invalid_state), and the races between them."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from core.booking import BookingService
from core.domain import Booking, BookingStatus, CancelledBy, Code, PaymentStatus, ScheduleStatus
from core.errors import SlotrushError
from core.lifecycle import expiry
from core.operations import HospitalOperations
from core.stores import Stores
from strategies.base import InventoryStrategy
from tests.invariants import audit_violations
from tests.scenarios import HOSPITAL, create, schedule_in, utc_today

FEE = 2500


async def refusal(call: object) -> Code:
    with pytest.raises(SlotrushError) as refused:
        await call  # type: ignore[misc]
    return refused.value.code


async def book(service: BookingService, patient: str, schedule_id: int) -> Booking:
    return (await service.book(patient, schedule_id)).booking


async def answer(service: BookingService, patient: str, schedule_id: int) -> str:
    try:
        return (await book(service, patient, schedule_id)).status.value
    except SlotrushError as exc:
        return exc.code.value


async def lapse(pool: asyncpg.Pool, *bookings: Booking) -> None:
    """Move the holds' expiry into the past, as if their payment window had gone by."""
    await pool.execute(
        "UPDATE bookings SET hold_expires_at = now() - interval '1 second' WHERE id = ANY($1)",
        [b.id for b in bookings],
    )


async def status_of(stores: Stores, booking: Booking) -> Booking:
    found = await stores.ledger.get_booking(booking.id)
    assert found is not None
    return found


@pytest.fixture
def operations(service: BookingService) -> HospitalOperations:
    return HospitalOperations(service)


# --- holds ---------------------------------------------------------------------------------


async def test_a_paid_schedule_holds_the_number_until_paid_a_free_one_books(
    service: BookingService, stores: Stores
) -> None:
    paid, free = await create(
        service, schedule_in(capacity=2, fee_cents=FEE), schedule_in(doctor_id="doc2")
    )
    started = dt.datetime.now(dt.UTC)

    hold = await book(service, "alice", paid)
    booked = await book(service, "bob", free)

    assert (hold.status, hold.fee_cents, hold.doctor_id) == (
        BookingStatus.PENDING_PAYMENT,
        FEE,
        "doc1",
    )
    assert hold.hold_expires_at is not None
    # The hospital's payment window: 15 minutes unless it says otherwise.
    window = hold.hold_expires_at - started
    assert dt.timedelta(minutes=14) < window <= dt.timedelta(minutes=15, seconds=5)
    assert hold.payment.status is PaymentStatus.NONE and hold.payment.amount_cents == FEE
    assert (booked.status, booked.hold_expires_at, booked.fee_cents) == (
        BookingStatus.BOOKED,
        None,
        0,
    )
    assert (await stores.ledger.audit()).schedules[0].booked == 1


async def test_a_hold_counts_toward_capacity_and_every_rule(service: BookingService) -> None:
    paid, other = await create(
        service,
        schedule_in(capacity=2, fee_cents=FEE),
        schedule_in(capacity=5, doctor_id="doc2"),
    )
    await book(service, "alice", paid)
    assert await refusal(service.book("alice", paid)) is Code.ALREADY_BOOKED
    await book(service, "bob", paid)

    assert await refusal(service.book("carol", paid)) is Code.SOLD_OUT
    # One department, so one number a day: the unpaid hold uses it up.
    assert await refusal(service.book("alice", other)) is Code.DEPARTMENT_LIMIT


async def test_a_patient_cancels_a_hold_and_its_number_comes_back(
    service: BookingService,
) -> None:
    (paid,) = await create(service, schedule_in(capacity=1, fee_cents=FEE))
    hold = await book(service, "alice", paid)

    cancelled = await service.cancel("alice", hold.id)

    assert (cancelled.status, cancelled.cancelled_by) == (
        BookingStatus.CANCELLED,
        CancelledBy.PATIENT,
    )
    assert await answer(service, "bob", paid) == "pending_payment"


# --- expiry --------------------------------------------------------------------------------


async def test_a_lapsed_hold_expires_and_its_number_is_bookable_again(
    service: BookingService, strategy: InventoryStrategy, stores: Stores
) -> None:
    (paid,) = await create(service, schedule_in(capacity=2, fee_cents=FEE))
    lapsed, kept = await book(service, "alice", paid), await book(service, "bob", paid)
    assert await refusal(service.book("carol", paid)) is Code.SOLD_OUT
    await lapse(stores.pg, lapsed)

    assert await expiry.expire_holds(stores.pg, strategy) == 1

    expired = await status_of(stores, lapsed)
    assert expired.status is BookingStatus.EXPIRED and expired.expired_at is not None
    assert (await status_of(stores, kept)).status is BookingStatus.PENDING_PAYMENT
    # The number is back, and so is alice's day: she may book again.
    taken = await book(service, "carol", paid)
    assert taken.number == lapsed.number
    assert await answer(service, "alice", paid) == Code.SOLD_OUT.value
    # Sweeping again changes nothing.
    assert await expiry.expire_holds(stores.pg, strategy) == 0
    assert audit_violations(await stores.ledger.audit()) == []


async def test_expiry_sweeps_in_bounded_batches(
    service: BookingService, strategy: InventoryStrategy, stores: Stores
) -> None:
    (paid,) = await create(service, schedule_in(capacity=7, fee_cents=FEE))
    holds = [await book(service, f"p{i}", paid) for i in range(7)]
    await lapse(stores.pg, *holds)

    assert await expiry.expire_holds(stores.pg, strategy, batch=3) == 7
    assert (await stores.ledger.audit()).schedules[0].booked == 0


async def test_expiry_racing_a_cancel_ends_the_hold_once(
    service: BookingService, strategy: InventoryStrategy, stores: Stores
) -> None:
    (paid,) = await create(service, schedule_in(capacity=20, fee_cents=FEE))
    holds = [await book(service, f"p{i}", paid) for i in range(20)]
    await lapse(stores.pg, *holds)

    results = await asyncio.gather(
        expiry.expire_holds(stores.pg, strategy),
        *(cancel_or_code(service, hold) for hold in holds),
    )

    ended = [await status_of(stores, hold) for hold in holds]
    expired = [b for b in ended if b.status is BookingStatus.EXPIRED]
    cancelled = [b for b in ended if b.status is BookingStatus.CANCELLED]
    assert len(expired) + len(cancelled) == 20
    assert results[0] == len(expired)
    # A cancel that lost the race is told the hold expired: it is not a cancelled booking.
    assert sorted(r for r in results[1:] if isinstance(r, Code)) == [Code.INVALID_STATE] * len(
        expired
    )
    # Every number came back exactly once.
    newcomers = [await answer(service, f"n{i}", paid) for i in range(21)]
    assert newcomers.count("pending_payment") == 20
    assert audit_violations(await stores.ledger.audit()) == []


async def cancel_or_code(service: BookingService, booking: Booking) -> Booking | Code:
    try:
        return await service.cancel(booking.patient_id, booking.id)
    except SlotrushError as exc:
        return exc.code


# --- forbidden transitions -----------------------------------------------------------------


async def test_transitions_the_table_does_not_have_are_invalid_state(
    service: BookingService,
    strategy: InventoryStrategy,
    operations: HospitalOperations,
    stores: Stores,
) -> None:
    paid, today = await create(
        service,
        schedule_in(capacity=2, fee_cents=FEE),
        schedule_in(capacity=3, doctor_id="doc2", department_id="d2", visit_date=utc_today()),
    )
    expired = await book(service, "alice", paid)
    await lapse(stores.pg, expired)
    await expiry.expire_holds(stores.pg, strategy)
    attended = await book(service, "bob", today)
    await operations.check_in(HOSPITAL, "staff", attended.verification_code)
    no_show = await book(service, "carol", today)
    await operations.day_end(HOSPITAL, utc_today())

    for ended in (expired, attended, no_show):
        assert await refusal(service.cancel(ended.patient_id, ended.id)) is Code.INVALID_STATE
    # Nothing changed them.
    assert [(await status_of(stores, b)).status for b in (expired, attended, no_show)] == [
        BookingStatus.EXPIRED,
        BookingStatus.ATTENDED,
        BookingStatus.NO_SHOW,
    ]
    # A code of a booking not booked any more (here: settled) checks nothing in.
    code = no_show.verification_code
    assert await refusal(operations.check_in(HOSPITAL, "staff", code)) is Code.BOOKING_NOT_FOUND


# --- suspension ----------------------------------------------------------------------------


async def test_suspension_cancels_every_held_booking_and_closes_the_schedule(
    service: BookingService, operations: HospitalOperations, stores: Stores
) -> None:
    paid, other = await create(
        service,
        schedule_in(capacity=3, fee_cents=FEE),
        schedule_in(capacity=3, doctor_id="doc2", department_id="d2"),
    )
    hold, booked = await book(service, "alice", paid), await book(service, "bob", paid)
    elsewhere = await book(service, "carol", other)

    view = await operations.suspend(paid, "doctor ill", within=None)

    assert view.status is ScheduleStatus.SUSPENDED
    for booking in (hold, booked):
        ended = await status_of(stores, booking)
        assert (ended.status, ended.cancelled_by) == (
            BookingStatus.CANCELLED,
            CancelledBy.HOSPITAL,
        )
    assert (await status_of(stores, elsewhere)).status is BookingStatus.BOOKED
    assert await refusal(service.book("dave", paid)) is Code.SCHEDULE_CLOSED
    # The patients' day is theirs again: alice may book another department's session.
    assert await answer(service, "alice", other) == "booked"
    # Suspending again changes nothing.
    assert (await operations.suspend(paid, "again", within=None)).status is (
        ScheduleStatus.SUSPENDED
    )
    assert (await stores.ledger.audit()).schedules[0].booked == 0


async def test_a_suspended_schedule_is_refused_by_the_strategy_itself(
    service: BookingService, operations: HospitalOperations, stores: Stores
) -> None:
    (sid,) = await create(service, schedule_in(capacity=3))
    await book(service, "alice", sid)  # loads the Redis slot for the gates
    await operations.suspend(sid, "doctor ill", within=None)

    # Another process, which has not learnt of the suspension yet, books straight through.
    other = BookingService(service.strategy, stores.ledger)
    assert await refusal(other.book("bob", sid)) is Code.SCHEDULE_CLOSED
    assert (await stores.ledger.audit()).schedules[0].booked == 0


async def test_suspension_racing_a_crowd_leaves_no_booking_held(
    service: BookingService, operations: HospitalOperations, stores: Stores
) -> None:
    (sid,) = await create(service, schedule_in(capacity=50))
    crowd = [answer(service, f"p{i}", sid) for i in range(40)]
    answers = await asyncio.gather(*crowd, operations.suspend(sid, "ill", within=None))

    assert set(answers[:-1]) <= {"booked", Code.SCHEDULE_CLOSED.value, Code.BUSY.value}
    assert (await stores.ledger.audit()).schedules[0].booked == 0


async def test_a_hospital_administrator_suspends_its_own_schedules_only(
    service: BookingService, operations: HospitalOperations
) -> None:
    (sid,) = await create(service, schedule_in())
    assert await refusal(operations.suspend(sid, "x", within="h-other")) is (
        Code.SCHEDULE_NOT_FOUND
    )
    assert (await operations.suspend(sid, "x", within=HOSPITAL)).status is (
        ScheduleStatus.SUSPENDED
    )


# --- check-in ------------------------------------------------------------------------------


async def test_check_in_attends_a_booking_of_today_once(
    service: BookingService, operations: HospitalOperations
) -> None:
    today, later = await create(
        service,
        schedule_in(capacity=3, visit_date=utc_today()),
        schedule_in(capacity=3, doctor_id="doc2"),
    )
    booking = await book(service, "alice", today)
    tomorrow = await book(service, "bob", later)

    attended = await operations.check_in(HOSPITAL, "staff", booking.verification_code.lower())

    assert (attended.id, attended.status) == (booking.id, BookingStatus.ATTENDED)
    assert attended.attended_at is not None
    again = operations.check_in(HOSPITAL, "staff", booking.verification_code)
    assert await refusal(again) is Code.BOOKING_NOT_FOUND
    other_day = operations.check_in(HOSPITAL, "staff", tomorrow.verification_code)
    assert await refusal(other_day) is Code.BOOKING_NOT_FOUND
    wrong_hospital = operations.check_in("h-other", "staff", booking.verification_code)
    assert await refusal(wrong_hospital) is Code.BOOKING_NOT_FOUND


async def test_two_check_ins_of_one_code_at_once_attend_it_once(
    service: BookingService, operations: HospitalOperations
) -> None:
    (today,) = await create(service, schedule_in(visit_date=utc_today()))
    booking = await book(service, "alice", today)

    results = await asyncio.gather(
        *(check_in_or_code(operations, booking.verification_code) for _ in range(5))
    )

    assert sum(isinstance(r, Booking) for r in results) == 1
    assert results.count(Code.BOOKING_NOT_FOUND) == 4


async def check_in_or_code(operations: HospitalOperations, code: str) -> Booking | Code:
    try:
        return await operations.check_in(HOSPITAL, "staff", code)
    except SlotrushError as exc:
        return exc.code


async def test_repeated_wrong_codes_are_rate_limited_per_staff_member(
    service: BookingService, operations: HospitalOperations
) -> None:
    (today,) = await create(service, schedule_in(visit_date=utc_today()))
    booking = await book(service, "alice", today)
    for _ in range(10):
        assert await refusal(operations.check_in(HOSPITAL, "guesser", "WRONG234")) is (
            Code.BOOKING_NOT_FOUND
        )

    with pytest.raises(SlotrushError) as limited:
        await operations.check_in(HOSPITAL, "guesser", booking.verification_code)
    assert limited.value.code is Code.RATE_LIMITED
    assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 300
    # Another staff member at the counter is not held up.
    attended = await operations.check_in(HOSPITAL, "colleague", booking.verification_code)
    assert attended.status is BookingStatus.ATTENDED


# --- day-end settlement --------------------------------------------------------------------


async def test_day_end_settles_what_is_still_booked_as_no_shows(
    service: BookingService, operations: HospitalOperations, stores: Stores
) -> None:
    free, paid, later = await create(
        service,
        schedule_in(capacity=5, visit_date=utc_today()),
        schedule_in(capacity=5, visit_date=utc_today(), doctor_id="doc2", fee_cents=FEE),
        schedule_in(capacity=5, doctor_id="doc3"),
    )
    missed = [await book(service, f"p{i}", free) for i in range(3)]
    attended = await book(service, "p9", free)
    await operations.check_in(HOSPITAL, "staff", attended.verification_code)
    hold = await book(service, "q1", paid)
    future = await book(service, "q2", later)

    settled = await operations.day_end(HOSPITAL, utc_today())

    assert (settled.hospital_id, settled.visit_date, settled.no_shows) == (HOSPITAL, utc_today(), 3)
    assert settled.finished_at is not None
    for booking in missed:
        ended = await status_of(stores, booking)
        assert ended.status is BookingStatus.NO_SHOW and ended.settled_at is not None
    assert (await status_of(stores, attended)).status is BookingStatus.ATTENDED
    # Unpaid holds of the day are expiry's; other days are not this settlement's.
    assert (await status_of(stores, hold)).status is BookingStatus.PENDING_PAYMENT
    assert (await status_of(stores, future)).status is BookingStatus.BOOKED
    # Settling again changes nothing and answers the same count.
    again = await operations.day_end(HOSPITAL, utc_today())
    assert again.no_shows == 3
    assert [(await status_of(stores, b)).settled_at for b in missed] == [
        (await status_of(stores, b)).settled_at for b in missed
    ]


async def test_day_end_refuses_a_date_the_hospital_has_not_reached(
    service: BookingService, operations: HospitalOperations
) -> None:
    await create(service, schedule_in())
    tomorrow = utc_today() + dt.timedelta(days=2)
    assert await refusal(operations.day_end(HOSPITAL, tomorrow)) is Code.INVALID_STATE
    assert await refusal(operations.day_end("h-unknown", utc_today())) is Code.HOSPITAL_NOT_FOUND


async def test_two_settlements_at_once_settle_each_booking_once(
    service: BookingService, stores: Stores
) -> None:
    strategy = service.strategy
    from core.lifecycle import settlement

    (today,) = await create(service, schedule_in(capacity=40, visit_date=utc_today()))
    for i in range(40):
        await book(service, f"p{i}", today)

    first, second = await asyncio.gather(
        settlement.settle_day(stores.pg, strategy, HOSPITAL, utc_today(), batch=7),
        settlement.settle_day(stores.pg, strategy, HOSPITAL, utc_today(), batch=7),
    )

    assert first.no_shows == second.no_shows == 40
    statuses = await stores.pg.fetch("SELECT status FROM bookings")
    assert {row["status"] for row in statuses} == {"no_show"}


async def test_cancels_racing_day_end_end_each_booking_once(
    service: BookingService, operations: HospitalOperations, stores: Stores
) -> None:
    (today,) = await create(service, schedule_in(capacity=30, visit_date=utc_today()))
    bookings = [await book(service, f"p{i}", today) for i in range(30)]

    results = await asyncio.gather(
        operations.day_end(HOSPITAL, utc_today()), *(cancel_or_code(service, b) for b in bookings)
    )

    ended = [await status_of(stores, b) for b in bookings]
    no_shows = sum(b.status is BookingStatus.NO_SHOW for b in ended)
    cancelled = sum(b.status is BookingStatus.CANCELLED for b in ended)
    assert no_shows + cancelled == 30
    settled = results[0]
    assert not isinstance(settled, Booking | Code)
    assert settled.no_shows == no_shows
    assert [r for r in results[1:] if isinstance(r, Code)] == [Code.INVALID_STATE] * no_shows
    assert audit_violations(await stores.ledger.audit()) == []
