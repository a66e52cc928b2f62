"""Hospitals, departments and doctors as resources (API.md 1.1, Management): created and
replaced by PUT, read by GET, deleted unless bookings hold numbers of them, each refusal
with its stable code; the time zone a hospital sets decides when its schedules close.

Tokens are checked for every route by test_auth.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from server.shapes import Rules
from server.shapes import hospitals as hospital_shapes
from tests.http.conftest import Answer, Client, admin_token, patient_token, schedule_in, unique

HOSPITAL = {
    "name": "Peking Union Medical College Hospital",
    "timezone": "Asia/Shanghai",
    "settle_at": "22:30",
    "cancel_cutoff_minutes": 120,
    "payment_window_minutes": 30,
    "webhook_url": "https://his.example.org:8443/slotrush/notices?v=1",
}


def hospital_path(hospital_id: str, rest: str = "") -> str:
    return f"/v1/admin/hospitals/{hospital_id}{rest}"


async def admin(api: Client, method: str, path: str, body: Any = None) -> Answer:
    return await api.call(method, path, token=admin_token(), json=body)


async def put_hospital(api: Client, **fields: Any) -> str:
    hospital_id = unique("h")
    answer = await admin(api, "PUT", hospital_path(hospital_id), {**HOSPITAL, **fields})
    assert answer.status == 200, answer.body
    return hospital_id


# --- valid --------------------------------------------------------------------------------------


async def test_a_hospital_is_created_read_and_replaced(api: Client) -> None:
    hospital_id = unique("h")
    path = hospital_path(hospital_id)

    created = await admin(api, "PUT", path, HOSPITAL)
    assert created.status == 200
    assert created.shaped(hospital_shapes.Hospital) == hospital_shapes.Hospital(
        id=hospital_id, **HOSPITAL
    )
    read = await admin(api, "GET", path)
    assert read.status == 200 and read.json == created.json

    replaced = await admin(api, "PUT", path, {"name": "PUMCH", "timezone": "Asia/Urumqi"})
    assert replaced.json == {
        "id": hospital_id,
        "name": "PUMCH",
        "timezone": "Asia/Urumqi",
        "settle_at": "23:00",
        "cancel_cutoff_minutes": 0,
        "payment_window_minutes": 15,
        "webhook_url": None,
    }
    assert (await admin(api, "GET", path)).json == replaced.json


async def test_what_a_schedule_named_reads_with_defaults(api: Client) -> None:
    schedule = await api.create_schedule()
    hospital_id = schedule["hospital_id"]

    hospital = (await admin(api, "GET", hospital_path(hospital_id))).json
    assert (hospital["name"], hospital["timezone"]) == (hospital_id, "UTC")
    department = await admin(api, "GET", hospital_path(hospital_id, "/departments/cardiology"))
    assert department.json == {"id": "cardiology", "hospital_id": hospital_id, "name": "cardiology"}
    doctor = await admin(api, "GET", hospital_path(hospital_id, "/doctors/dr-lee"))
    assert doctor.shaped(hospital_shapes.Doctor) == hospital_shapes.Doctor(
        id="dr-lee",
        hospital_id=hospital_id,
        name="dr-lee",
        title="",
        department_id="cardiology",
        fee_cents=0,
    )


async def test_departments_and_doctors_are_created_read_and_replaced(api: Client) -> None:
    hospital_id = await put_hospital(api)
    department_path = hospital_path(hospital_id, "/departments/neuro")
    doctor_path = hospital_path(hospital_id, "/doctors/dr.wang")

    department = await admin(api, "PUT", department_path, {"name": "神经内科"})
    assert department.json == {"id": "neuro", "hospital_id": hospital_id, "name": "神经内科"}
    assert (await admin(api, "GET", department_path)).json == department.json

    sent = {"name": "Wang Li", "title": "Chief physician", "department_id": "neuro"}
    doctor = await admin(api, "PUT", doctor_path, {**sent, "fee_cents": 5000})
    assert doctor.json == {"id": "dr.wang", "hospital_id": hospital_id, **sent, "fee_cents": 5000}
    assert (await admin(api, "GET", doctor_path)).json == doctor.json
    replaced = await admin(api, "PUT", doctor_path, {"name": "Wang Li", "department_id": "neuro"})
    assert (replaced.json["title"], replaced.json["fee_cents"]) == ("", 0)


async def test_the_rules_and_the_hospital_share_the_cancel_cutoff(api: Client) -> None:
    hospital_id = await put_hospital(api)
    rules_path = hospital_path(hospital_id, "/rules")

    put = await admin(api, "PUT", rules_path, {"max_per_day": 3, "cancel_cutoff_minutes": 30})
    assert put.status == 200
    assert (await admin(api, "GET", hospital_path(hospital_id))).json["cancel_cutoff_minutes"] == 30

    await admin(api, "PUT", hospital_path(hospital_id), {**HOSPITAL, "cancel_cutoff_minutes": 45})
    read = await admin(api, "GET", rules_path)
    assert read.shaped(Rules) == Rules(max_per_day=3, cancel_cutoff_minutes=45)


async def test_a_schedule_closes_when_its_hospital_moves_past_the_visit_date(
    api: Client,
) -> None:
    # Pago Pago (UTC-11) and Kiritimati (UTC+14) are 25 hours apart: a date that is today in
    # the one has passed in the other.
    hospital_id = await put_hospital(api, timezone="Pacific/Pago_Pago")
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=-11))).date()
    schedule = await api.create_schedule(hospital_id=hospital_id, visit_date=today.isoformat())
    assert (await api.book(schedule["id"], unique("p"))).status == 201

    await put_hospital_zone(api, hospital_id, "Pacific/Kiritimati")
    (await api.book(schedule["id"], unique("p"))).problem(409, "schedule_closed")
    read = await api.call("GET", f"/v1/schedules/{schedule['id']}", token=patient_token("p"))
    assert read.json["status"] == "closed"
    # Nor can a schedule be made for it any more.
    again = schedule_in(hospital_id=hospital_id, visit_date=today.isoformat())
    (await admin(api, "POST", "/v1/admin/schedules", again)).problem(400, "invalid_request")


async def put_hospital_zone(api: Client, hospital_id: str, zone: str) -> None:
    answer = await admin(api, "PUT", hospital_path(hospital_id), {**HOSPITAL, "timezone": zone})
    assert answer.status == 200


# --- 409 in use, and deletion -------------------------------------------------------------------


async def test_nothing_with_held_bookings_is_deleted(api: Client) -> None:
    schedule = await api.create_schedule(capacity=2)
    hospital_id = schedule["hospital_id"]
    department_path = hospital_path(hospital_id, "/departments/cardiology")
    doctor_path = hospital_path(hospital_id, "/doctors/dr-lee")
    patient = unique("p")
    booked = (await api.book(schedule["id"], patient)).json["booking"]

    for path in (doctor_path, department_path, hospital_path(hospital_id)):
        (await admin(api, "DELETE", path)).problem(409, "in_use")
        assert (await admin(api, "GET", path)).status == 200

    cancel = f"/v1/bookings/{booked['id']}/cancel"
    assert (await api.call("POST", cancel, token=patient_token(patient))).status == 200
    deleted = await admin(api, "DELETE", doctor_path)
    assert deleted.status == 204 and deleted.body == b""
    (await admin(api, "GET", doctor_path)).problem(404, "doctor_not_found")
    (await admin(api, "DELETE", doctor_path)).problem(404, "doctor_not_found")
    # A deleted doctor's schedule is closed to booking, but still there to read.
    (await api.book(schedule["id"], unique("p"))).problem(409, "schedule_closed")
    read = await api.call("GET", f"/v1/schedules/{schedule['id']}", token=patient_token("p"))
    assert read.json["status"] == "closed"


async def test_a_deleted_hospital_is_gone_until_put_or_named_again(api: Client) -> None:
    schedule = await api.create_schedule()
    hospital_id = schedule["hospital_id"]
    path = hospital_path(hospital_id)

    assert (await admin(api, "DELETE", path)).status == 204
    for gone in (path, path + "/rules", path + "/departments/cardiology", path + "/doctors/dr-lee"):
        (await admin(api, "GET", gone)).problem(404, "hospital_not_found")
    (await api.book(schedule["id"], unique("p"))).problem(409, "schedule_closed")

    # v1 upserts what a schedule names: a new schedule brings the hospital back.
    await api.create_schedule(hospital_id=hospital_id)
    assert (await admin(api, "GET", path)).json["name"] == hospital_id
    assert (await api.book(schedule["id"], unique("p"))).status == 201

    (await admin(api, "DELETE", path + "/departments/cardiology")).problem(409, "in_use")
    await admin(api, "PUT", path, HOSPITAL)
    assert (await admin(api, "GET", path)).json["name"] == HOSPITAL["name"]


# --- 404 ----------------------------------------------------------------------------------------


async def test_unknown_hospitals_departments_and_doctors_are_not_found(api: Client) -> None:
    nowhere = unique("h")
    for method, path, body in [
        ("GET", hospital_path(nowhere), None),
        ("DELETE", hospital_path(nowhere), None),
        ("GET", hospital_path(nowhere, "/rules"), None),
        ("PUT", hospital_path(nowhere, "/departments/d1"), {"name": "D"}),
        ("GET", hospital_path(nowhere, "/departments/d1"), None),
        ("DELETE", hospital_path(nowhere, "/departments/d1"), None),
        ("PUT", hospital_path(nowhere, "/doctors/dr1"), {"name": "Dr", "department_id": "d1"}),
        ("GET", hospital_path(nowhere, "/doctors/dr1"), None),
        ("DELETE", hospital_path(nowhere, "/doctors/dr1"), None),
    ]:
        (await admin(api, method, path, body)).problem(404, "hospital_not_found")

    known = await put_hospital(api)
    for method, path, body, code in [
        ("GET", "/departments/d1", None, "department_not_found"),
        ("DELETE", "/departments/d1", None, "department_not_found"),
        ("PUT", "/doctors/dr1", {"name": "Dr", "department_id": "d1"}, "department_not_found"),
        ("GET", "/doctors/dr1", None, "doctor_not_found"),
        ("DELETE", "/doctors/dr1", None, "doctor_not_found"),
    ]:
        (await admin(api, method, hospital_path(known, path), body)).problem(404, code)


# --- 400 ----------------------------------------------------------------------------------------

INVALID_HOSPITALS: list[tuple[str, Any]] = [
    ("missing name", {"timezone": "UTC"}),
    ("missing timezone", {"name": "H"}),
    ("empty name", {**HOSPITAL, "name": ""}),
    ("name of 201 chars", {**HOSPITAL, "name": "n" * 201}),
    ("name with a newline", {**HOSPITAL, "name": "two\nlines"}),
    ("unknown zone", {**HOSPITAL, "timezone": "Mars/Olympus_Mons"}),
    ("zone in lower case", {**HOSPITAL, "timezone": "asia/shanghai"}),
    ("the machine's zone", {**HOSPITAL, "timezone": "localtime"}),
    ("an offset for a zone", {**HOSPITAL, "timezone": "+08:00"}),
    ("a path for a zone", {**HOSPITAL, "timezone": "../../etc/passwd"}),
    ("settle_at 24:00", {**HOSPITAL, "settle_at": "24:00"}),
    ("settle_at 7:30", {**HOSPITAL, "settle_at": "7:30"}),
    ("settle_at with seconds", {**HOSPITAL, "settle_at": "07:30:00"}),
    ("negative cutoff", {**HOSPITAL, "cancel_cutoff_minutes": -1}),
    ("cutoff beyond a year", {**HOSPITAL, "cancel_cutoff_minutes": 525_601}),
    ("payment window 0", {**HOSPITAL, "payment_window_minutes": 0}),
    ("payment window beyond a day", {**HOSPITAL, "payment_window_minutes": 1441}),
    ("ftp webhook", {**HOSPITAL, "webhook_url": "ftp://his.example.org/"}),
    ("webhook without host", {**HOSPITAL, "webhook_url": "https://"}),
    ("webhook with a space", {**HOSPITAL, "webhook_url": "https://his example.org/"}),
    ("javascript webhook", {**HOSPITAL, "webhook_url": "javascript:alert(1)"}),
    ("webhook too long", {**HOSPITAL, "webhook_url": "https://h.org/" + "a" * 2048}),
    ("unknown field", {**HOSPITAL, "max_per_day": 3}),
    ("a list", [HOSPITAL]),
]


@pytest.mark.parametrize(
    "body", [b for _, b in INVALID_HOSPITALS], ids=[n for n, _ in INVALID_HOSPITALS]
)
async def test_an_invalid_hospital_is_refused(api: Client, body: Any) -> None:
    hospital_id = unique("h")
    (await admin(api, "PUT", hospital_path(hospital_id), body)).problem(400, "invalid_request")
    (await admin(api, "GET", hospital_path(hospital_id))).problem(404, "hospital_not_found")


INVALID_DOCTORS: list[tuple[str, Any]] = [
    ("missing department", {"name": "Dr"}),
    ("department id with a space", {"name": "Dr", "department_id": "a b"}),
    ("negative fee", {"name": "Dr", "department_id": "d1", "fee_cents": -1}),
    ("title of 201 chars", {"name": "Dr", "department_id": "d1", "title": "t" * 201}),
    ("title with a tab", {"name": "Dr", "department_id": "d1", "title": "a\tb"}),
]


@pytest.mark.parametrize(
    "body", [b for _, b in INVALID_DOCTORS], ids=[n for n, _ in INVALID_DOCTORS]
)
async def test_an_invalid_doctor_is_refused(api: Client, body: Any) -> None:
    hospital_id = await put_hospital(api)
    await admin(api, "PUT", hospital_path(hospital_id, "/departments/d1"), {"name": "D"})
    path = hospital_path(hospital_id, "/doctors/dr1")
    (await admin(api, "PUT", path, body)).problem(400, "invalid_request")
    (await admin(api, "GET", path)).problem(404, "doctor_not_found")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/departments/d1", {}),
        ("/departments/d1", {"name": 7}),
        ("/departments/bad%20id", {"name": "D"}),
        ("/doctors/" + "d" * 65, {"name": "Dr", "department_id": "d1"}),
        ("/rules", {"cancel_cutoff_minutes": 525_601}),
    ],
)
async def test_an_invalid_department_doctor_or_rule_is_refused(
    api: Client, path: str, body: Any
) -> None:
    hospital_id = await put_hospital(api)
    (await admin(api, "PUT", hospital_path(hospital_id, path), body)).problem(
        400, "invalid_request"
    )


async def test_a_bad_hospital_id_in_a_path_is_invalid(api: Client) -> None:
    for method in ("PUT", "GET", "DELETE"):
        answer = await admin(api, method, "/v1/admin/hospitals/st%20mary", HOSPITAL)
        answer.problem(400, "invalid_request")
