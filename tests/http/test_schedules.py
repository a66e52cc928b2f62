"""Schedules: created by admins (one or a batch), read by anyone with a token; the admin
rules, blacklist and audit endpoints; strict validation of everything sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from server import shapes
from tests.http.conftest import Client, admin_token, patient_token, schedule_in, unique


async def test_one_schedule_is_created_and_read_back(api: Client) -> None:
    sent = schedule_in(capacity=7, fee_cents=1250, period="pm")
    created = await api.call("POST", "/v1/admin/schedules", token=admin_token(), json=sent)
    assert created.status == 201 and created.headers["Content-Type"] == "application/json"
    created.shaped(shapes.ScheduleList)
    (schedule,) = created.json["schedules"]
    assert {k: schedule[k] for k in sent} == sent
    assert (schedule["remaining"], schedule["status"]) == (7, "open")
    opens_at = dt.datetime.fromisoformat(schedule["opens_at"])
    assert schedule["opens_at"].endswith("Z")
    assert abs(opens_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)

    read = await api.call("GET", f"/v1/schedules/{schedule['id']}", token=patient_token("anyone"))
    assert read.status == 200 and read.json == schedule


async def test_a_batch_is_created_in_order_with_defaults(api: Client) -> None:
    hospital = unique("h")
    sent = [schedule_in(hospital_id=hospital, doctor_id=f"dr-{i}") for i in range(3)]
    schedules = await api.create_schedules(*sent)
    assert [s["doctor_id"] for s in schedules] == ["dr-0", "dr-1", "dr-2"]
    assert all(s["fee_cents"] == 0 for s in schedules)
    assert len({s["id"] for s in schedules}) == 3


async def test_the_largest_batch_is_accepted_and_one_more_is_not(api: Client) -> None:
    hospital = unique("h")
    batch = [schedule_in(hospital_id=hospital, capacity=1) for _ in range(10_000)]
    assert len(await api.create_schedules(*batch)) == 10_000
    too_many = {"schedules": [*batch, schedule_in()]}
    answer = await api.call("POST", "/v1/admin/schedules", token=admin_token(), json=too_many)
    answer.problem(400, "invalid_request")


async def test_listing_filters_by_hospital_department_doctor_and_date(api: Client) -> None:
    hospital = unique("h")
    day_1, day_2 = "2031-03-01", "2031-03-02"
    made = await api.create_schedules(
        schedule_in(hospital_id=hospital, department_id="a", doctor_id="x", visit_date=day_1),
        schedule_in(hospital_id=hospital, department_id="a", doctor_id="y", visit_date=day_2),
        schedule_in(hospital_id=hospital, department_id="b", doctor_id="x", visit_date=day_2),
    )
    ids = [s["id"] for s in made]

    async def listed(query: str) -> list[str]:
        answer = await api.call(
            "GET", f"/v1/schedules?hospital_id={hospital}{query}", token=patient_token("p")
        )
        assert answer.status == 200
        return [s.id for s in answer.shaped(shapes.SchedulePage).schedules]

    assert await listed("") == ids
    assert await listed("&department_id=a") == ids[:2]
    assert await listed("&doctor_id=x") == [ids[0], ids[2]]
    assert await listed(f"&date={day_2}") == ids[1:]
    assert await listed(f"&department_id=b&doctor_id=x&date={day_2}") == [ids[2]]
    assert await listed("&department_id=c") == []


@pytest.mark.parametrize(
    "query",
    [
        "hospital=h",
        "date=2031-02-30",
        "date=31-03-01",
        "date=2031-3-1",
        "hospital_id=a%20b",
        "hospital_id=" + "h" * 65,
        "hospital_id=a&hospital_id=b",
        "doctor_id=",
    ],
)
async def test_a_bad_listing_query_is_invalid(api: Client, query: str) -> None:
    answer = await api.call("GET", f"/v1/schedules?{query}", token=patient_token("p"))
    answer.problem(400, "invalid_request")


def _without(field: str) -> dict[str, Any]:
    valid = schedule_in()
    del valid[field]
    return valid


INVALID_SCHEDULES: list[tuple[str, Any]] = [
    ("missing hospital_id", _without("hospital_id")),
    ("missing capacity", _without("capacity")),
    ("unknown field", schedule_in(color="red")),
    ("hospital_id with a space", schedule_in(hospital_id="st mary")),
    ("hospital_id of 65 chars", schedule_in(hospital_id="h" * 65)),
    ("empty doctor_id", schedule_in(doctor_id="")),
    ("numeric department_id", schedule_in(department_id=7)),
    ("impossible date", schedule_in(visit_date="2031-02-29")),
    ("date with time", schedule_in(visit_date="2031-02-01T00:00:00Z")),
    ("compact date", schedule_in(visit_date="20310201")),
    ("period", schedule_in(period="evening")),
    ("capacity 0", schedule_in(capacity=0)),
    ("capacity 100001", schedule_in(capacity=100_001)),
    ("capacity true", schedule_in(capacity=True)),
    ("capacity 5.5", schedule_in(capacity=5.5)),
    ("capacity '5'", schedule_in(capacity="5")),
    ("capacity null", schedule_in(capacity=None)),
    ("negative fee", schedule_in(fee_cents=-1)),
    ("fee beyond bigint", schedule_in(fee_cents=2**63)),
    ("fee false", schedule_in(fee_cents=False)),
    ("opens_at without offset", schedule_in(opens_at="2031-01-01T08:00:00")),
    ("opens_at a date", schedule_in(opens_at="2031-01-01")),
    ("opens_at at hour 24", schedule_in(opens_at="2031-01-01T24:00:00Z")),
    ("opens_at before year 1", schedule_in(opens_at="0001-01-01T00:00:00+01:00")),
    ("opens_at null", schedule_in(opens_at=None)),
    ("visit date passed", schedule_in(visit_date=str(dt.date.today() - dt.timedelta(days=2)))),
    (
        "opens_at after the visit starts",
        # Visits are 30 days ahead; an am session of a hospital in UTC starts at 08:00 UTC.
        schedule_in(opens_at=f"{dt.date.today() + dt.timedelta(days=30)}T08:00:01Z"),
    ),
    ("a list", [schedule_in()]),
    ("empty batch", {"schedules": []}),
    ("batch not a list", {"schedules": schedule_in()}),
    ("batch item not an object", {"schedules": [schedule_in(), "x"]}),
    ("batch with an extra field", {"schedules": [schedule_in()], "dry_run": True}),
    ("batch with one bad item", {"schedules": [schedule_in(), schedule_in(capacity=-5)]}),
]


@pytest.mark.parametrize(
    "body", [b for _, b in INVALID_SCHEDULES], ids=[n for n, _ in INVALID_SCHEDULES]
)
async def test_an_invalid_schedule_creates_nothing(api: Client, body: Any) -> None:
    answer = await api.call("POST", "/v1/admin/schedules", token=admin_token(), json=body)
    answer.problem(400, "invalid_request")


async def test_a_refusal_names_the_field_but_never_echoes_the_value(api: Client) -> None:
    hostile = "<script>alert(1)</script>"
    for body, field in [
        ({"schedules": [schedule_in(), schedule_in(period=hostile)]}, "schedules[1].period"),
        ({"schedules": [schedule_in(capacity=hostile)]}, "schedules[0].capacity"),
        (schedule_in(visit_date=hostile), "visit_date"),
        (schedule_in(**{hostile: 1}), "the body"),
    ]:
        answer = await api.call("POST", "/v1/admin/schedules", token=admin_token(), json=body)
        detail = answer.problem(400, "invalid_request")["detail"]
        assert detail.startswith(field) and "script" not in detail, detail


async def test_numbers_with_a_zero_fraction_are_integers(api: Client) -> None:
    # JSON Schema's integer, as the document says: 325.0 is 325.
    schedule = await api.create_schedule(capacity=325.0, fee_cents=0.0)
    assert (schedule["capacity"], schedule["fee_cents"]) == (325, 0)
    path = f"/v1/admin/hospitals/{unique('h')}/rules"
    answer = await api.call("PUT", path, token=admin_token(), json={"max_per_day": 3.0})
    assert answer.status == 200 and answer.json["max_per_day"] == 3


async def test_times_with_offsets_are_stored_as_utc(api: Client) -> None:
    schedule = await api.create_schedule(
        visit_date="2031-01-02", opens_at="2031-01-01T08:30:00.25+05:30"
    )
    assert schedule["opens_at"] == "2031-01-01T03:00:00.250000Z"
    assert schedule["status"] == "not_open"


async def test_rules_take_defaults_for_omitted_fields(api: Client) -> None:
    path = f"/v1/admin/hospitals/{unique('h')}/rules"
    answer = await api.call("PUT", path, token=admin_token(), json={})
    assert answer.status == 200
    assert answer.json == {
        "max_per_day": 2,
        "max_per_department_per_day": 1,
        "cancel_cutoff_minutes": 0,
    }


@pytest.mark.parametrize(
    "rules",
    [
        {"max_per_day": 0},
        {"max_per_department_per_day": -1},
        {"cancel_cutoff_minutes": -1},
        {"max_per_day": 2**31},
        {"max_per_day": "2"},
        {"max_per_day": True},
        {"max_per_week": 3},
        [],
    ],
)
async def test_invalid_rules_are_refused(api: Client, rules: Any) -> None:
    path = f"/v1/admin/hospitals/{unique('h')}/rules"
    (await api.call("PUT", path, token=admin_token(), json=rules)).problem(400, "invalid_request")


@pytest.mark.parametrize(
    ("hospital", "patient", "body"),
    [
        ("bad hospital!", "p1", {"until": "2031-01-01T00:00:00Z"}),
        ("h1", "p" * 65, {"until": "2031-01-01T00:00:00Z"}),
        ("h1", "p1", {}),
        ("h1", "p1", {"until": "tomorrow"}),
        ("h1", "p1", {"until": "2031-01-01T00:00:00Z", "reason": "x"}),
    ],
)
async def test_an_invalid_blacklist_entry_is_refused(
    api: Client, hospital: str, patient: str, body: Any
) -> None:
    path = f"/v1/admin/hospitals/{hospital}/blacklist/{patient}"
    (await api.call("PUT", path, token=admin_token(), json=body)).problem(400, "invalid_request")


async def test_the_audit_counts_bookings_in_postgres(api: Client) -> None:
    schedule = await api.create_schedule(capacity=4)
    for _ in range(3):
        assert (await api.book(schedule["id"], unique("p"))).status == 201
    answer = await api.call("GET", "/v1/admin/audit", token=admin_token())
    assert answer.status == 200
    audit = answer.shaped(shapes.Audit)
    (mine,) = [s for s in audit.schedules if s.id == schedule["id"]]
    assert mine == shapes.AuditSchedule(
        id=schedule["id"], capacity=4, booked=3, remaining=1, oversold=False
    )
    assert (audit.oversold, audit.duplicate_numbers, audit.duplicate_patients) == (0, 0, 0)
    assert audit.limit_violations == 0
