"""core.hospitals against the ledger: what deleting means over time, which the HTTP suite
cannot wait for. Bookings only of visits that have passed in the hospital's zone do not keep
anything from being deleted; bookings of today's visits do.
"""

from __future__ import annotations

import datetime as dt

import pytest

from core.booking import BookingService
from core.domain import Booking, Code, Period, ScheduleIn, ScheduleStatus
from core.errors import SlotrushError
from core.hospitals import Hospital
from core.stores import Stores
from strategies import STRATEGIES
from tests.conftest import Clock, StrategyFactory

VISIT = dt.date(2031, 6, 1)
# 23:00 on the visit date in Shanghai, and the first minute of the day after.
LAST_HOUR = dt.datetime(2031, 6, 1, 15, tzinfo=dt.UTC)
DAY_AFTER = dt.datetime(2031, 6, 1, 16, tzinfo=dt.UTC)


@pytest.fixture
async def service(make_strategy: StrategyFactory, stores: Stores, clock: Clock) -> BookingService:
    strategy = await make_strategy(STRATEGIES["pg-pessimistic"])
    clock.move_to(dt.datetime(2031, 5, 30, tzinfo=dt.UTC))
    service = BookingService(strategy, stores.ledger, clock=clock)
    await service.hospitals.put_hospital(Hospital(id="h1", name="H", timezone="Asia/Shanghai"))
    return service


async def booked(service: BookingService) -> Booking:
    """Alice's booking of a night session on VISIT of doctor doc1 of department d1."""
    item = ScheduleIn("h1", "d1", "doc1", VISIT, Period.NIGHT, capacity=1)
    (view,) = await service.create_schedules([item])
    return (await service.book("alice", view.schedule.id)).booking


async def in_use(service: BookingService) -> list[bool]:
    """For the doctor, the department and the hospital in turn: refused as in use?"""
    deletions = [
        service.hospitals.delete_doctor("h1", "doc1"),
        service.hospitals.delete_department("h1", "d1"),
        service.hospitals.delete_hospital("h1"),
    ]
    refused = []
    for deletion in deletions:
        try:
            await deletion
        except SlotrushError as error:
            assert error.code is Code.IN_USE
            refused.append(True)
        else:
            refused.append(False)
    return refused


async def test_bookings_of_the_visit_day_keep_everything_in_use(
    service: BookingService, clock: Clock
) -> None:
    await booked(service)
    clock.move_to(LAST_HOUR)
    assert await in_use(service) == [True, True, True]
    assert (await service.hospitals.doctor("h1", "doc1")).name == "doc1"


async def test_bookings_of_a_visit_day_that_has_passed_do_not(
    service: BookingService, clock: Clock
) -> None:
    booking = await booked(service)
    clock.move_to(DAY_AFTER)
    assert await in_use(service) == [False, False, False]
    with pytest.raises(SlotrushError) as gone:
        await service.hospitals.hospital("h1")
    assert gone.value.code is Code.HOSPITAL_NOT_FOUND
    # The booking and its schedule stay, for the records.
    assert await service.booking("alice", booking.id) == booking
    assert (await service.schedule_view(booking.schedule_id)).status is ScheduleStatus.CLOSED
