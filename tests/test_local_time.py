"""Hospital local time: visit dates, session starts, the cancel cutoff and closing are the
hospital's, across daylight-saving changes; instants stay UTC.

The rules are the same for every strategy (the booking service applies them before a
strategy is asked), so the ledger-backed tests here use one strategy; the contract suite
checks closing against all of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from zoneinfo import ZoneInfo

import pytest

from core.booking import BookingService
from core.domain import (
    BookingStatus,
    Code,
    Period,
    Schedule,
    ScheduleIn,
    ScheduleQuery,
    ScheduleStatus,
)
from core.errors import SlotrushError
from core.hospitals import Hospital
from core.localtime import visit_starts_at
from core.stores import Stores
from core.terms import BookingTerms
from strategies import STRATEGIES
from tests.conftest import Clock, StrategyFactory


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def schedule_on(visit_date: dt.date, period: Period = Period.AM) -> Schedule:
    return Schedule(
        id=1,
        hospital_id="h1",
        department_id="d1",
        doctor_id="doc1",
        visit_date=visit_date,
        period=period,
        capacity=1,
        fee_cents=0,
        opens_at=utc(2030, 1, 1),
    )


# Sessions on the days clocks change (the last Sundays of March and October in Berlin, the
# second Sunday of March and the first of November in New York) and the day after: the same
# 08:00 on the wall is another hour in UTC, and a cutoff of 600 minutes counts real minutes
# back over the change, so it is not 22:00 on the wall the evening before.
DAYLIGHT_SAVING = [
    ("Europe/Berlin", dt.date(2031, 3, 30), utc(2031, 3, 30, 6), utc(2031, 3, 29, 20)),
    ("Europe/Berlin", dt.date(2031, 3, 31), utc(2031, 3, 31, 6), utc(2031, 3, 30, 20)),
    ("Europe/Berlin", dt.date(2031, 10, 26), utc(2031, 10, 26, 7), utc(2031, 10, 25, 21)),
    ("America/New_York", dt.date(2031, 3, 9), utc(2031, 3, 9, 12), utc(2031, 3, 9, 2)),
    ("America/New_York", dt.date(2031, 11, 2), utc(2031, 11, 2, 13), utc(2031, 11, 2, 3)),
]


@pytest.mark.parametrize(("zone", "visit_date", "starts", "cutoff"), DAYLIGHT_SAVING)
def test_the_cancel_cutoff_counts_real_minutes_back_from_the_local_start(
    zone: str, visit_date: dt.date, starts: dt.datetime, cutoff: dt.datetime
) -> None:
    terms = BookingTerms(zone=ZoneInfo(zone), cancel_cutoff_minutes=600)
    schedule = schedule_on(visit_date)
    second = dt.timedelta(seconds=1)

    assert visit_starts_at(visit_date, Period.AM, ZoneInfo(zone)) == starts
    assert not terms.cancel_window_closed(schedule, cutoff - second)
    assert terms.cancel_window_closed(schedule, cutoff + second)


def test_every_period_starts_at_its_local_time() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    day = dt.date(2031, 6, 1)
    starts = [visit_starts_at(day, period, shanghai) for period in Period]
    assert starts == [utc(2031, 6, 1, 0), utc(2031, 6, 1, 5), utc(2031, 6, 1, 10)]


def test_a_visit_day_is_over_at_local_midnight() -> None:
    terms = BookingTerms(zone=ZoneInfo("Asia/Shanghai"))
    schedule = schedule_on(dt.date(2031, 6, 1))
    # Midnight in Shanghai is 16:00 UTC the day before.
    assert not terms.closed(schedule, utc(2031, 6, 1, 15, 59))
    assert terms.closed(schedule, utc(2031, 6, 1, 16, 0))


# --- through the booking service and the ledger ----------------------------------------------


@pytest.fixture
async def service(make_strategy: StrategyFactory, stores: Stores, clock: Clock) -> BookingService:
    strategy = await make_strategy(STRATEGIES["pg-pessimistic"])
    return BookingService(strategy, stores.ledger, clock=clock)


async def in_zone(service: BookingService, zone: str, cutoff: int = 0) -> str:
    """A hospital of its own in `zone`; its id."""
    hospital_id = "h-" + zone.replace("/", "-")
    await service.hospitals.put_hospital(
        Hospital(id=hospital_id, name=zone, timezone=zone, cancel_cutoff_minutes=cutoff)
    )
    return hospital_id


def item(hospital_id: str, visit_date: dt.date, **fields: object) -> ScheduleIn:
    values: dict[str, object] = {
        "hospital_id": hospital_id,
        "department_id": "d1",
        "doctor_id": "doc1",
        "visit_date": visit_date,
        "period": Period.AM,
        "capacity": 2,
        **fields,
    }
    return ScheduleIn(**values)  # type: ignore[arg-type]


async def refusal(call: Awaitable[object]) -> tuple[Code, str | None]:
    """The code and detail a call was refused with; fails the test if it was not refused."""
    with pytest.raises(SlotrushError) as refused:
        await call
    return refused.value.code, refused.value.detail


async def test_cancelling_across_the_change_to_summer_time(
    service: BookingService, clock: Clock
) -> None:
    berlin = await in_zone(service, "Europe/Berlin", cutoff=600)
    clock.move_to(utc(2031, 3, 25, 12))
    (view,) = await service.create_schedules([item(berlin, dt.date(2031, 3, 30))])
    early, late = [
        (await service.book(patient, view.schedule.id)).booking for patient in ("alice", "bob")
    ]

    # 08:00 CEST on the Sunday is 06:00 UTC; 600 minutes before is 20:00 UTC on Saturday,
    # 21:00 on Berlin's wall (still CET). Counted in UTC, as before, it was 22:00 UTC.
    clock.move_to(utc(2031, 3, 29, 19, 59))
    assert (await service.cancel("alice", early.id)).status is BookingStatus.CANCELLED
    clock.move_to(utc(2031, 3, 29, 20, 1))
    assert (await refusal(service.cancel("bob", late.id)))[0] is Code.CANCEL_WINDOW_CLOSED


async def test_a_schedule_closes_at_midnight_in_its_hospital(
    service: BookingService, clock: Clock
) -> None:
    shanghai = await in_zone(service, "Asia/Shanghai")
    clock.move_to(utc(2031, 6, 1, 1))
    (view,) = await service.create_schedules([item(shanghai, dt.date(2031, 6, 1))])
    sid = view.schedule.id

    clock.move_to(utc(2031, 6, 1, 15, 59))  # 23:59 in Shanghai
    assert (await service.book("alice", sid)).booking.status is BookingStatus.BOOKED
    clock.move_to(utc(2031, 6, 1, 16, 0))  # the next day in Shanghai, still June 1st in UTC
    assert (await refusal(service.book("bob", sid)))[0] is Code.SCHEDULE_CLOSED
    assert (await service.schedule_view(sid)).status is ScheduleStatus.CLOSED
    (listed,) = (await service.schedule_page(ScheduleQuery(hospital_id=shanghai))).items
    assert listed.status is ScheduleStatus.CLOSED
    closed = ScheduleQuery(hospital_id=shanghai, status=ScheduleStatus.CLOSED)
    assert [v.schedule.id for v in (await service.schedule_page(closed)).items] == [sid]
    still_open = ScheduleQuery(hospital_id=shanghai, status=ScheduleStatus.OPEN)
    assert (await service.schedule_page(still_open)).items == []


async def test_a_visit_date_past_in_the_hospital_is_refused(
    service: BookingService, clock: Clock
) -> None:
    kiritimati = await in_zone(service, "Pacific/Kiritimati")  # UTC+14
    honolulu = await in_zone(service, "Pacific/Honolulu")  # UTC-10
    clock.move_to(utc(2031, 1, 1, 12))  # January 2nd in Kiritimati, 1st in Honolulu
    new_year = dt.date(2031, 1, 1)

    (view,) = await service.create_schedules([item(honolulu, new_year)])
    assert view.status is ScheduleStatus.OPEN
    code, detail = await refusal(service.create_schedules([item(kiritimati, new_year)]))
    assert (code, detail) == (
        Code.INVALID_REQUEST,
        "visit_date has passed in the hospital's time zone",
    )
    batch = [item(honolulu, new_year), item(kiritimati, new_year)]
    code, detail = await refusal(service.create_schedules(batch))
    assert detail is not None and detail.startswith("schedules[1].visit_date ")
    # A hospital the ledger does not know yet is on UTC.
    (view,) = await service.create_schedules([item("h-new", new_year)])
    assert view.status is ScheduleStatus.OPEN


async def test_opens_at_must_not_be_after_the_visit_starts(
    service: BookingService, clock: Clock
) -> None:
    shanghai = await in_zone(service, "Asia/Shanghai")
    clock.move_to(utc(2031, 1, 1))
    starts = utc(2031, 1, 5, 0)  # 08:00 in Shanghai
    day = dt.date(2031, 1, 5)

    code, detail = await refusal(
        service.create_schedules([item(shanghai, day, opens_at=starts + dt.timedelta(seconds=1))])
    )
    assert (code, detail) == (Code.INVALID_REQUEST, "opens_at is after the visit starts")
    (view,) = await service.create_schedules([item(shanghai, day, opens_at=starts)])
    assert (view.schedule.opens_at, view.status) == (starts, ScheduleStatus.NOT_OPEN)


async def test_opens_at_defaults_to_now_or_to_a_start_already_past(
    service: BookingService, clock: Clock
) -> None:
    shanghai = await in_zone(service, "Asia/Shanghai")
    clock.move_to(utc(2031, 1, 5, 3))  # 11:00 in Shanghai: the am session is under way
    day = dt.date(2031, 1, 5)

    am, pm = await service.create_schedules(
        [item(shanghai, day), item(shanghai, day, period=Period.PM)]
    )
    assert am.schedule.opens_at == utc(2031, 1, 5, 0)
    assert abs(pm.schedule.opens_at - clock()) < dt.timedelta(seconds=5)
    assert am.status is pm.status is ScheduleStatus.OPEN
