"""HIS sync (API.md 1.1, Management) and the upsert by external_id, against the ledger and
the strategies: feeds create, update and suspend; a dry run changes nothing; the same feed
twice changes nothing; a capacity cut below held numbers is a conflict; a capacity increase
is bookable in Redis and in PostgreSQL; feeds applied in any order converge to the last."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from core.booking import BookingService
from core.domain import BookingStatus, CancelledBy, Code, Period, ScheduleStatus
from core.errors import SlotrushError
from core.his_sync import feed
from core.his_sync.feed import FeedRow, RowError
from core.his_sync.plan import Action
from core.his_sync.service import HisSync
from core.hospitals import Department, Doctor, Hospital
from core.stores import Stores
from strategies import STRATEGIES
from strategies.base import InventoryStrategy
from tests.conftest import StrategyFactory
from tests.planner_statistics import analyzed
from tests.scenarios import VISIT_DATE, schedule_in

_hospitals = itertools.count()


@pytest.fixture(params=["redis-lua", "pg-pessimistic"])
async def strategy(
    request: pytest.FixtureRequest, make_strategy: StrategyFactory
) -> InventoryStrategy:
    """A Redis strategy and a PostgreSQL one: a capacity change must reach each's inventory."""
    return await make_strategy(STRATEGIES[request.param])


@pytest.fixture
def his(service: BookingService) -> HisSync:
    return HisSync(service)


async def new_hospital(service: BookingService) -> str:
    """A hospital with departments d1, d2 and doctors doc1, doc2 (a HIS sync names only
    what exists)."""
    hospital_id = f"his{next(_hospitals)}"
    hospitals = service.hospitals
    await hospitals.put_hospital(Hospital(hospital_id, "H"))
    for department in ("d1", "d2"):
        await hospitals.put_department(Department(hospital_id, department, department))
    for doctor in ("doc1", "doc2"):
        await hospitals.put_doctor(Doctor(hospital_id, doctor, doctor, "d1"))
    return hospital_id


def row(external_id: str, **fields: object) -> dict[str, object]:
    return {
        "external_id": external_id,
        "department_id": "d1",
        "doctor_id": "doc1",
        "visit_date": VISIT_DATE.isoformat(),
        "period": "am",
        "capacity": 2,
        **fields,
    }


def rows(*fields: dict[str, object]) -> list[FeedRow | RowError]:
    return feed.rows(enumerate(fields, start=1))


async def live(stores: Stores, hospital_id: str) -> dict[str, tuple[int, int]]:
    """external_id -> (capacity, fee) of the hospital's live schedules."""
    found = await stores.pg.fetch(
        "SELECT external_id, capacity, fee_cents FROM schedules WHERE hospital_id = $1 "
        "AND external_id IS NOT NULL AND suspended_at IS NULL",
        hospital_id,
    )
    return {r["external_id"]: (r["capacity"], r["fee_cents"]) for r in found}


async def schedule_id(stores: Stores, hospital_id: str, external_id: str) -> int:
    found = await stores.pg.fetchval(
        "SELECT id FROM schedules WHERE hospital_id = $1 AND external_id = $2 "
        "AND suspended_at IS NULL",
        hospital_id,
        external_id,
    )
    assert found is not None
    return int(found)


async def answers(service: BookingService, schedule: int, patients: Sequence[str]) -> list[str]:
    out = []
    for patient in patients:
        try:
            out.append(str((await service.book(patient, schedule)).booking.number))
        except SlotrushError as exc:
            out.append(exc.code.value)
    return out


# --- apply, dry run, idempotence ---------------------------------------------------------------


async def test_a_feed_creates_then_the_same_feed_changes_nothing(
    service: BookingService, his: HisSync, stores: Stores
) -> None:
    hospital_id = await new_hospital(service)
    the_feed = rows(row("s1"), row("s2", period="pm", capacity=5, fee_cents=300))

    first = await his.sync(hospital_id, the_feed, dry_run=False)
    again = await his.sync(hospital_id, the_feed, dry_run=False)

    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    assert [r.action for r in first.rows] == [Action.CREATE, Action.CREATE]
    assert (again.created, again.updated, again.suspended, again.unchanged) == (0, 0, 0, 2)
    assert again.rows == []
    assert await live(stores, hospital_id) == {"s1": (2, 0), "s2": (5, 300)}


async def test_a_dry_run_answers_the_diff_and_changes_nothing(
    service: BookingService, his: HisSync, stores: Stores
) -> None:
    hospital_id = await new_hospital(service)
    await his.sync(hospital_id, rows(row("s1"), row("s2")), dry_run=False)

    dry = await his.sync(hospital_id, rows(row("s1", capacity=4), row("s3")), dry_run=True)

    assert (dry.dry_run, dry.created, dry.updated, dry.suspended) == (True, 1, 1, 1)
    update = next(r for r in dry.rows if r.action is Action.UPDATE)
    assert [(c.field, c.before, c.after) for c in update.changes] == [("capacity", 2, 4)]
    assert await live(stores, hospital_id) == {"s1": (2, 0), "s2": (2, 0)}


async def test_rows_in_error_are_reported_and_the_rest_applied(
    service: BookingService, his: HisSync, stores: Stores
) -> None:
    hospital_id = await new_hospital(service)
    report = await his.sync(
        hospital_id,
        rows(
            row("ok"),
            row("dep", department_id="nowhere"),
            row("doc", doctor_id="nobody"),
            row("date", visit_date="2030-02-30"),
            row("period", period="noon"),
            row("past", visit_date="2001-01-01"),
            row("ok"),
        ),
        dry_run=False,
    )

    assert [(r.line, r.code) for r in report.rows if r.action is Action.ERROR] == [
        (2, Code.DEPARTMENT_NOT_FOUND),
        (3, Code.DOCTOR_NOT_FOUND),
        (4, Code.INVALID_REQUEST),
        (5, Code.INVALID_REQUEST),
        (6, Code.INVALID_REQUEST),
        (7, Code.INVALID_REQUEST),  # the same external_id twice
    ]
    assert (report.created, report.errors) == (1, 6)
    assert await live(stores, hospital_id) == {"ok": (2, 0)}


async def test_a_row_moving_a_session_is_a_conflict(
    service: BookingService, his: HisSync, stores: Stores
) -> None:
    hospital_id = await new_hospital(service)
    await his.sync(hospital_id, rows(row("s1")), dry_run=False)

    moved = await his.sync(hospital_id, rows(row("s1", period="night")), dry_run=False)

    assert [(r.action, r.code) for r in moved.rows] == [(Action.CONFLICT, Code.SCHEDULE_MOVED)]
    assert moved.suspended == 0


# --- capacity ------------------------------------------------------------------------------


async def test_a_capacity_increase_is_bookable(
    service: BookingService, his: HisSync, stores: Stores
) -> None:
    hospital_id = await new_hospital(service)
    await his.sync(hospital_id, rows(row("s1", capacity=1)), dry_run=False)
    schedule = await schedule_id(stores, hospital_id, "s1")
    # Booked before the change: the strategy's inventory (Redis's slot) is loaded already.
    assert await answers(service, schedule, ["p1", "p2"]) == ["1", "sold_out"]

    # Twice, so the second change's id is not the schedule's (an outbox row has both).
    for capacity, patient in ((2, "p2"), (3, "p3")):
        grown = await his.sync(hospital_id, rows(row("s1", capacity=capacity)), dry_run=False)
        assert grown.updated == 1
        assert await answers(service, schedule, [patient]) == [str(capacity)]
    assert await answers(service, schedule, ["p4"]) == ["sold_out"]
    assert (await service.schedule_view(schedule)).schedule.capacity == 3


async def test_a_cut_above_the_numbers_held_is_applied_everywhere(
    service: BookingService, his: HisSync, stores: Stores
) -> None:
    hospital_id = await new_hospital(service)
    await his.sync(hospital_id, rows(row("s1", capacity=4)), dry_run=False)
    schedule = await schedule_id(stores, hospital_id, "s1")
    assert await answers(service, schedule, ["p1"]) == ["1"]

    cut = await his.sync(hospital_id, rows(row("s1", capacity=2)), dry_run=False)

    assert (cut.updated, cut.conflicts) == (1, 0)
    assert await answers(service, schedule, ["p2", "p3"]) == ["2", "sold_out"]


async def test_a_cut_below_the_numbers_held_is_a_conflict_not_applied(
    service: BookingService, his: HisSync, stores: Stores
) -> None:
    hospital_id = await new_hospital(service)
    await his.sync(hospital_id, rows(row("s1", capacity=3)), dry_run=False)
    schedule = await schedule_id(stores, hospital_id, "s1")
    assert await answers(service, schedule, ["p1", "p2"]) == ["1", "2"]

    dry = await his.sync(hospital_id, rows(row("s1", capacity=1, fee_cents=5)), dry_run=True)
    cut = await his.sync(hospital_id, rows(row("s1", capacity=1, fee_cents=5)), dry_run=False)

    for report in (dry, cut):
        assert (report.updated, report.conflicts) == (0, 1)
        (conflict,) = report.rows
        assert (conflict.code, conflict.reason) == (
            Code.CAPACITY_BELOW_HELD,
            "number 2 is held by a booking",
        )
    assert await live(stores, hospital_id) == {"s1": (3, 0)}
    assert await answers(service, schedule, ["p3", "p4"]) == ["3", "sold_out"]


# --- removed sessions ------------------------------------------------------------------------


async def test_a_removed_session_is_suspended_and_its_bookings_cancelled_by_the_hospital(
    service: BookingService, his: HisSync, stores: Stores
) -> None:
    hospital_id = await new_hospital(service)
    await his.sync(hospital_id, rows(row("stays"), row("goes")), dry_run=False)
    goes = await schedule_id(stores, hospital_id, "goes")
    booking = (await service.book("p1", goes)).booking

    report = await his.sync(hospital_id, rows(row("stays")), dry_run=False)

    assert (report.suspended, report.unchanged) == (1, 1)
    assert [(r.action, r.schedule_id) for r in report.rows] == [(Action.SUSPEND, goes)]
    cancelled = await stores.ledger.get_booking(booking.id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.cancelled_by) == (
        BookingStatus.CANCELLED,
        CancelledBy.HOSPITAL,
    )
    assert (await service.schedule_view(goes)).status is ScheduleStatus.SUSPENDED
    assert await answers(service, goes, ["p2"]) == [Code.SCHEDULE_CLOSED.value]
    # Named again, the session is a new schedule: a suspension is for good.
    back = await his.sync(hospital_id, rows(row("stays"), row("goes")), dry_run=False)
    assert back.created == 1
    assert await schedule_id(stores, hospital_id, "goes") != goes


# --- the upsert of POST /v1/admin/schedules ------------------------------------------------


async def test_creating_a_schedule_twice_by_external_id_makes_one(
    service: BookingService, his: HisSync, stores: Stores
) -> None:
    item = schedule_in(hospital_id="upsert1", capacity=2, external_id="x1")

    first = await his.upsert([item])
    again = await his.upsert([item])
    grown = await his.upsert([schedule_in(hospital_id="upsert1", capacity=5, external_id="x1")])

    assert (first.created, again.created, grown.created) == (True, False, False)
    ids = {u.views[0].schedule.id for u in (first, again, grown)}
    assert len(ids) == 1
    assert (grown.views[0].schedule.capacity, grown.views[0].remaining) == (5, 5)
    with pytest.raises(SlotrushError) as moved:
        await his.upsert([schedule_in(hospital_id="upsert1", period=Period.PM, external_id="x1")])
    assert moved.value.code is Code.SCHEDULE_MOVED


async def test_numbers_created_or_added_in_bulk_refresh_the_planner_statistics(
    his: HisSync, stores: Stores
) -> None:
    await his.upsert([schedule_in(hospital_id="bulk1", capacity=1000, external_id="b1")])
    assert await analyzed(stores.pg, "schedule_numbers") == (1, 1000)
    await his.upsert([schedule_in(hospital_id="bulk1", capacity=1300, external_id="b1")])
    assert await analyzed(stores.pg, "schedule_numbers") == (2, 1300)


# --- convergence ----------------------------------------------------------------------------

SESSIONS = ["a", "b", "c", "d"]
session_row = st.fixed_dictionaries(
    {
        "capacity": st.integers(1, 5),
        "fee_cents": st.sampled_from([0, 100]),
        "visit_date": st.sampled_from(
            [(VISIT_DATE + dt.timedelta(days=d)).isoformat() for d in (0, 1)]
        ),
    }
)
a_feed = st.dictionaries(st.sampled_from(SESSIONS), session_row, max_size=len(SESSIONS))


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(feeds=st.lists(a_feed, min_size=1, max_size=4))
async def test_feeds_applied_in_any_order_converge_to_the_last(
    service: BookingService, his: HisSync, stores: Stores, feeds: list[dict[str, dict[str, object]]]
) -> None:
    note(f"feeds={feeds!r}")
    hospital_id = await new_hospital(service)
    # A session named again on another date is a move (a conflict): each session keeps the
    # date it had in the first feed naming it, as a HIS would.
    dates: dict[str, object] = {}
    for f in feeds:
        for session, fields in f.items():
            fields["visit_date"] = dates.setdefault(session, fields["visit_date"])
    for f in feeds:
        report = await his.sync(
            hospital_id,
            rows(*(row(session, **fields) for session, fields in sorted(f.items()))),
            dry_run=False,
        )
        assert (report.conflicts, report.errors) == (0, 0)

    last = feeds[-1]
    assert await live(stores, hospital_id) == {
        session: (fields["capacity"], fields["fee_cents"]) for session, fields in last.items()
    }
    replay = await his.sync(
        hospital_id,
        rows(*(row(session, **fields) for session, fields in sorted(last.items()))),
        dry_run=True,
    )
    assert (replay.created, replay.updated, replay.suspended) == (0, 0, 0)
