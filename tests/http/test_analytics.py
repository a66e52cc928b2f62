"""Analytics: a hospital's booking outcomes per age band, department, weekday and lead time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg
import pytest

from server.shapes import analytics as shapes
from tests.http.conftest import (
    Answer,
    Client,
    admin_token,
    fill,
    patient_token,
    schedule_in,
    settle,
    unique,
)

VISIT = dt.date(2025, 3, 5)  # a Wednesday, in the past: its visits are settled
NEXT = VISIT + dt.timedelta(days=1)


def years_before(day: dt.date, years: int) -> dt.date:
    return day.replace(year=day.year - years)


# Birth dates by patient: ages at VISIT on both sides of a band's edge. "anon" keeps no
# profile; "unborn" was born after the visit (both: unknown).
BIRTH_DATES: dict[str, dt.date | None] = {
    "teen": years_before(VISIT, 18) + dt.timedelta(days=1),  # 17 on VISIT, 18 on NEXT
    "young": years_before(VISIT, 18),  # 18 on VISIT
    "mid": years_before(VISIT, 40),
    "old": years_before(VISIT, 70),
    "anon": None,
    "unborn": VISIT + dt.timedelta(days=30),
}


@dataclass(frozen=True)
class Visit:
    patient: str
    day: dt.date
    department: str
    status: str
    lead_days: int


VISITS = [
    Visit("teen", VISIT, "a", "no_show", 0),
    Visit("young", VISIT, "a", "attended", 1),
    Visit("mid", VISIT, "b", "attended", 6),
    Visit("old", VISIT, "b", "cancelled", 7),
    Visit("anon", NEXT, "a", "booked", 30),
    Visit("unborn", NEXT, "a", "attended", 13),
    Visit("old", NEXT, "a", "no_show", 14),
    Visit("teen", NEXT, "b", "attended", 29),
]


async def a_season(api: Client, ledger: asyncpg.Connection) -> str:
    """The bookings of VISITS at a hospital of their own, settled, made `lead_days` before
    their visit (at 00:30 UTC, so a booking's UTC date is what counts)."""
    hospital = unique("h")
    patients = {name: unique(name) for name in BIRTH_DATES}
    for name, born in BIRTH_DATES.items():
        if born is not None:
            answer = await api.call(
                "PUT",
                "/v1/me/profile",
                token=patient_token(patients[name]),
                json={"birth_date": born.isoformat()},
            )
            assert answer.status == 200, answer.body
    places = sorted({(v.day, v.department) for v in VISITS})
    # A past visit date cannot be booked: book the same weekdays some weeks ahead, then move
    # the season back to its dates, as the ledger holds it once it has happened.
    ahead = dt.timedelta(weeks=(dt.date.today() - VISIT).days // 7 + 2)
    made = await api.create_schedules(
        *(
            schedule_in(hospital_id=hospital, visit_date=(d + ahead).isoformat(), department_id=dep)
            for d, dep in places
        )
    )
    schedules = {place: s["id"] for place, s in zip(places, made, strict=True)}
    for v in VISITS:
        answer = await api.book(schedules[(v.day, v.department)], patients[v.patient])
        assert answer.status == 201, answer.body
        made_at = dt.datetime.combine(v.day, dt.time(0, 30), dt.UTC) - dt.timedelta(v.lead_days)
        await settle(ledger, answer.json["booking"]["id"], v.status, made_at)
    await into_the_past(ledger, hospital, ahead)
    return hospital


async def into_the_past(ledger: asyncpg.Connection, hospital: str, by: dt.timedelta) -> None:
    for table in ("schedules", "bookings"):
        await ledger.execute(
            f"UPDATE {table} SET visit_date = visit_date - $2::int WHERE hospital_id = $1",
            hospital,
            by.days,
        )


async def analytics(api: Client, hospital: str, query: str) -> Answer:
    path = f"/v1/admin/hospitals/{hospital}/analytics?{query}"
    return await api.call("GET", path, token=admin_token())


async def groups(api: Client, hospital: str, query: str) -> dict[str, tuple[int, ...]]:
    """group -> (bookings, attended, no_shows, cancellations), in the answer's order."""
    answer = await analytics(api, hospital, query)
    assert answer.status == 200, answer.body
    answer.shaped(shapes.Analytics)
    return {
        g["group"]: (g["bookings"], g["attended"], g["no_shows"], g["cancellations"])
        for g in answer.json["groups"]
    }


@pytest.fixture
async def season(api: Client, shared_ledger: asyncpg.Connection) -> str:
    return await a_season(api, shared_ledger)


async def test_age_bands_are_the_patients_age_at_the_visit(api: Client, season: str) -> None:
    found = await groups(api, season, "group_by=age_band")
    # The teenager turns 18 on NEXT: her second visit is in the next band.
    assert list(found.items()) == [
        ("0-17", (1, 0, 1, 0)),
        ("18-34", (2, 2, 0, 0)),
        ("35-49", (1, 1, 0, 0)),
        ("65+", (2, 0, 1, 1)),
        ("unknown", (2, 1, 0, 0)),
    ]


async def test_departments_in_order_of_their_ids(api: Client, season: str) -> None:
    found = await groups(api, season, "group_by=department")
    assert list(found.items()) == [("a", (5, 2, 2, 0)), ("b", (3, 2, 0, 1))]


async def test_weekdays_of_the_visits(api: Client, season: str) -> None:
    found = await groups(api, season, "group_by=weekday")
    assert list(found.items()) == [("wed", (4, 2, 1, 1)), ("thu", (4, 2, 1, 0))]


async def test_lead_times_from_the_booking_date_to_the_visit(api: Client, season: str) -> None:
    found = await groups(api, season, "group_by=lead_time")
    assert list(found.items()) == [
        ("0d", (1, 0, 1, 0)),
        ("1d", (1, 1, 0, 0)),
        ("2-6d", (1, 1, 0, 0)),
        ("7-13d", (2, 1, 0, 1)),
        ("14-29d", (2, 1, 1, 0)),
        ("30d+", (1, 0, 0, 0)),
    ]


async def test_lead_times_count_days_on_the_hospitals_calendar(api: Client, season: str) -> None:
    # Every booking was made at 00:30 UTC: the evening before in New York, one day earlier.
    answer = await api.call(
        "PUT",
        f"/v1/admin/hospitals/{season}",
        token=admin_token(),
        json={"name": "New York", "timezone": "America/New_York"},
    )
    assert answer.status == 200, answer.body
    found = await groups(api, season, "group_by=lead_time")
    assert list(found.items()) == [
        ("1d", (1, 0, 1, 0)),
        ("2-6d", (1, 1, 0, 0)),
        ("7-13d", (2, 1, 0, 1)),
        ("14-29d", (2, 1, 1, 0)),
        ("30d+", (2, 1, 0, 0)),
    ]


async def test_rates_are_shares_of_settled_visits_and_of_bookings(api: Client, season: str) -> None:
    answer = await analytics(api, season, "group_by=department")
    a, b = answer.json["groups"]
    # a: 5 bookings, 2 attended, 2 no-shows, 1 still booked.
    assert (a["attendance_rate"], a["no_show_rate"], a["cancellation_rate"]) == (0.5, 0.5, 0.0)
    assert (b["attendance_rate"], b["no_show_rate"], b["cancellation_rate"]) == (1.0, 0.0, 1 / 3)
    assert a["small"] and b["small"]
    only_booked = (await analytics(api, season, "group_by=lead_time")).json["groups"][-1]
    assert only_booked["group"] == "30d+"
    assert (only_booked["attendance_rate"], only_booked["no_show_rate"]) == (None, None)
    assert only_booked["cancellation_rate"] == 0.0


async def test_the_visit_date_range_is_inclusive(api: Client, season: str) -> None:
    day, after = VISIT.isoformat(), NEXT.isoformat()
    assert await groups(api, season, f"group_by=weekday&from={after}") == {"thu": (4, 2, 1, 0)}
    assert await groups(api, season, f"group_by=weekday&to={day}") == {"wed": (4, 2, 1, 1)}
    answer = await analytics(api, season, f"group_by=weekday&from={day}&to={day}")
    assert (answer.json["from"], answer.json["to"]) == (day, day)
    assert [g["group"] for g in answer.json["groups"]] == ["wed"]
    assert await groups(api, season, f"group_by=weekday&from={after}&to={day}") == {}
    unbounded = await analytics(api, season, "group_by=weekday")
    assert (unbounded.json["from"], unbounded.json["to"]) == (None, None)


async def test_a_group_is_small_below_30_bookings_or_settled_visits(
    api: Client, shared_ledger: asyncpg.Connection
) -> None:
    hospital = unique("h")
    thirty, twenty_nine, unsettled = await api.create_schedules(
        schedule_in(hospital_id=hospital, department_id="thirty", capacity=30),
        schedule_in(hospital_id=hospital, department_id="twenty-nine", capacity=29),
        schedule_in(hospital_id=hospital, department_id="unsettled", capacity=40),
    )
    await fill(shared_ledger, thirty["id"], "attended")
    await fill(shared_ledger, twenty_nine["id"], "no_show")
    await fill(shared_ledger, unsettled["id"], "booked")
    answer = await analytics(api, hospital, "group_by=department")
    small = {g["group"]: g["small"] for g in answer.json["groups"]}
    assert small == {"thirty": False, "twenty-nine": True, "unsettled": True}


async def test_a_hospital_without_bookings_has_no_groups(api: Client) -> None:
    hospital = unique("h")
    answer = await analytics(api, hospital, "group_by=age_band")
    assert answer.status == 200
    assert answer.json == {
        "hospital_id": hospital,
        "group_by": "age_band",
        "from": None,
        "to": None,
        "groups": [],
    }


async def test_one_hospital_counts_none_of_anothers_bookings(api: Client, season: str) -> None:
    other = await api.create_schedule()
    assert (await api.book(other["id"], unique("p"))).status == 201
    assert sum(b[0] for b in (await groups(api, season, "group_by=weekday")).values()) == 8


@pytest.mark.parametrize(
    "query",
    [
        "",
        "group_by=age",
        "group_by=",
        "group_by=weekday&group_by=department",
        "group_by=weekday&from=2025-02-30",
        "group_by=weekday&to=yesterday",
        "group_by=weekday&hospital_id=h1",
    ],
)
async def test_a_bad_analytics_query_is_invalid(api: Client, query: str) -> None:
    (await analytics(api, "h1", query)).problem(400, "invalid_request")


async def test_a_patient_token_reads_no_analytics(api: Client) -> None:
    answer = await api.call(
        "GET", "/v1/admin/hospitals/h1/analytics?group_by=weekday", token=patient_token("p1")
    )
    answer.problem(403, "forbidden")
