"""The role matrix (API.md 1.1, Management; invariant 11): every route of the route table,
called by every kind of caller, answers what its declared Access says.

Callers: no token, a patient, the platform administrator, the administrator of the hospital
the request concerns ("own") and the administrator of another hospital ("other"). Each call
gets a fresh world (a hospital with a department, a doctor, schedules and a booking), so
routes that change or delete things are tried by every caller from the same start. The
matrix is driven by the route table: a route without a sample here fails, so no route joins
the table without someone deciding who may call it and checking that it is so.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.payments.signing import HEADER
from core.tokens import issue_token
from server.endpoints import ROUTES
from server.route import Access, Route
from tests.http.conftest import SECRET, Answer, Client, admin_token, patient_token, unique
from tests.sandbox import signed

ROLES = ("no token", "patient", "platform", "own", "other")
# Path parameters that reach an object by its serial id: another hospital's is not found.
BY_ID = frozenset({"schedule_id", "booking_id"})
UNTIL = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()


@dataclass
class World:
    """Hospital `hospital` with departments `dep` and `dep2` and their doctors `doc` and
    `doc2`; in the first a schedule `booked_schedule` on which `patient` holds `booking`, in
    the second a schedule `free_schedule`; `stranger` is another hospital."""

    hospital: str
    stranger: str
    patient: str
    booked_schedule: str = ""
    free_schedule: str = ""
    booking: str = ""
    tokens: dict[str, str | None] = field(default_factory=dict)


async def make_world(api: Client) -> World:
    world = World(hospital=unique("h"), stranger=unique("h"), patient=unique("p"))
    admin = admin_token()
    for hospital in (world.hospital, world.stranger):
        answer = await api.call(
            "PUT", f"/v1/admin/hospitals/{hospital}", token=admin, json=HOSPITAL
        )
        assert answer.status == 200, answer.body
    for department in ("dep", "dep2"):
        path = f"/v1/admin/hospitals/{world.hospital}/departments/{department}"
        assert (await api.call("PUT", path, token=admin, json={"name": department})).status == 200
    for doctor, department in (("doc", "dep"), ("doc2", "dep2")):
        path = f"/v1/admin/hospitals/{world.hospital}/doctors/{doctor}"
        body = {"name": doctor, "department_id": department}
        assert (await api.call("PUT", path, token=admin, json=body)).status == 200
    # In two departments: a patient may hold one number per department a day.
    free_elsewhere = {**schedule_of(world), "department_id": "dep2", "doctor_id": "doc2"}
    booked, free = await api.create_schedules(schedule_of(world), free_elsewhere)
    world.booked_schedule, world.free_schedule = booked["id"], free["id"]
    answer = await api.book(world.booked_schedule, world.patient)
    assert answer.status == 201, answer.body
    world.booking = answer.json["booking"]["id"]
    world.tokens = {
        "no token": None,
        "patient": patient_token(world.patient),
        "platform": admin_token(),
        "own": issue_token(SECRET, subject="staff-own", hospital_id=world.hospital),
        "other": issue_token(SECRET, subject="staff-other", hospital_id=world.stranger),
    }
    return world


HOSPITAL = {"name": "General", "timezone": "Asia/Shanghai"}


def schedule_of(world: World) -> dict[str, Any]:
    visit = dt.date.today() + dt.timedelta(days=30)
    return {
        "hospital_id": world.hospital,
        "department_id": "dep",
        "doctor_id": "doc",
        "visit_date": visit.isoformat(),
        "period": "pm",
        "capacity": 3,
    }


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] | None = None


Sample = Callable[[Client, World], Awaitable[Call]]


def call(method: str, path: str, body: Callable[[World], Any] | None = None) -> Sample:
    """A sample request: `path` formatted with the world's fields."""

    async def sample(api: Client, world: World) -> Call:
        return Call(method, path.format(w=world), None if body is None else body(world))

    return sample


def after_cancelling(sample: Sample) -> Sample:
    """`sample`, once the world's booking is cancelled: a hospital holding numbers cannot be
    deleted, and the matrix is about who may, not about what is in use."""

    async def cancelled_first(api: Client, world: World) -> Call:
        path = f"/v1/bookings/{world.booking}/cancel"
        answer = await api.call("POST", path, token=patient_token(world.patient))
        assert answer.status == 200, answer.body
        return await sample(api, world)

    return cancelled_first


def after_profile(sample: Sample) -> Sample:
    """`sample`, once the world's patient has a profile to read."""

    async def profiled_first(api: Client, world: World) -> Call:
        token = patient_token(world.patient)
        answer = await api.call("PUT", "/v1/me/profile", token=token, json=PROFILE)
        assert answer.status == 200, answer.body
        return await sample(api, world)

    return profiled_first


def hospital_today() -> str:
    return dt.datetime.now(ZoneInfo(HOSPITAL["timezone"])).date().isoformat()


async def check_in_today(api: Client, world: World) -> Call:
    """A check-in of a booking the world's patient makes for today in the other department."""
    today = {**schedule_of(world), "department_id": "dep2", "doctor_id": "doc2"}
    (schedule,) = await api.create_schedules({**today, "visit_date": hospital_today()})
    answer = await api.book(schedule["id"], world.patient)
    assert answer.status == 201, answer.body
    code = answer.json["booking"]["verification_code"]
    path = f"/v1/hospitals/{world.hospital}/check-ins"
    return Call("POST", path, {"verification_code": code})


def with_room(sample: Sample) -> Sample:
    """`sample`, once the world's free schedule has a waiting room open."""

    async def room_first(api: Client, world: World) -> Call:
        path = f"/v1/admin/schedules/{world.free_schedule}/waiting-room"
        answer = await api.call("PUT", path, token=admin_token(), json=ROOM)
        assert answer.status == 200, answer.body
        return await sample(api, world)

    return room_first


async def place_in_room(api: Client, world: World) -> Call:
    """Where the world's patient stands in the free schedule's room, with its position token."""
    path = f"/v1/schedules/{world.free_schedule}/waiting-room"
    joined = await api.call("POST", path, token=patient_token(world.patient))
    assert joined.status == 200, joined.body
    return Call("GET", path, headers={"Waiting-Room-Token": joined.json["position_token"]})


ROOM = {"admit_per_second": 5}


async def payment_of_a_hold(api: Client, world: World) -> Call:
    """The checkout of a hold the world's patient takes on a paid schedule of another day."""
    visit = dt.date.fromisoformat(schedule_of(world)["visit_date"]) + dt.timedelta(days=1)
    paid = {**schedule_of(world), "visit_date": visit.isoformat(), "fee_cents": 1500}
    (schedule,) = await api.create_schedules(paid)
    answer = await api.book(schedule["id"], world.patient)
    assert answer.status == 201, answer.body
    return Call("POST", f"/v1/bookings/{answer.json['booking']['id']}/payments")


async def signed_notice(api: Client, world: World) -> Call:
    """A notice the sandbox signed, of a payment this server never opened."""
    event = {
        "id": "evt_roles",
        "type": "checkout.declined",
        "created": int(time.time()),
        "data": {
            "checkout_ref": "co_unknown",
            "reference": f"{world.hospital}/999999",
            "amount_cents": 1500,
            "charge_ref": None,
        },
    }
    _, signature = signed(event)
    return Call("POST", "/v1/payments/sandbox/webhook", event, {HEADER: signature})


def after_blacklist_rules(sample: Sample) -> Sample:
    """`sample`, once the world's hospital has blacklist rules to read."""

    async def ruled_first(api: Client, world: World) -> Call:
        path = f"/v1/admin/hospitals/{world.hospital}/blacklist-rules"
        answer = await api.call("PUT", path, token=admin_token(), json={})
        assert answer.status == 200, answer.body
        return await sample(api, world)

    return ruled_first


async def retry_undelivered(api: Client, world: World) -> Call:
    """A retry of the "confirmed" notification of a booking at the world's hospital, whose
    webhook_url nothing listens on."""
    admin, path = admin_token(), f"/v1/admin/hospitals/{world.hospital}"
    hooked = {**HOSPITAL, "webhook_url": "http://127.0.0.1:9/hooks"}
    assert (await api.call("PUT", path, token=admin, json=hooked)).status == 200
    assert (await api.book(world.free_schedule, unique("p"))).status == 201
    listed = await api.call("GET", path + "/notifications?status=pending", token=admin)
    first = listed.json["notifications"][0]["id"]
    return Call("POST", f"{path}/notifications/{first}/retry")


PROFILE = {"birth_date": "1980-01-31"}
TAGS = {"tags": ["vip"]}
HOSPITAL_PATH = "/v1/admin/hospitals/{w.hospital}"
# One request per route, concerning the world's hospital; keyed by operationId.
SAMPLES: dict[str, Sample] = {
    "book": call("POST", "/v1/schedules/{w.free_schedule}/bookings"),
    "listSchedules": call("GET", "/v1/schedules?hospital_id={w.hospital}"),
    "getSchedule": call("GET", "/v1/schedules/{w.booked_schedule}"),
    "getBooking": call("GET", "/v1/bookings/{w.booking}"),
    "cancelBooking": call("POST", "/v1/bookings/{w.booking}/cancel"),
    "listMyBookings": call("GET", "/v1/me/bookings"),
    "createSchedules": call("POST", "/v1/admin/schedules", schedule_of),
    "putRules": call("PUT", HOSPITAL_PATH + "/rules", lambda w: {"max_per_day": 3}),
    "getRules": call("GET", HOSPITAL_PATH + "/rules"),
    "putBlacklist": call("PUT", HOSPITAL_PATH + "/blacklist/p-x", lambda w: {"until": UNTIL}),
    "deleteBlacklist": call("DELETE", HOSPITAL_PATH + "/blacklist/p-x"),
    "putBlacklistRules": call("PUT", HOSPITAL_PATH + "/blacklist-rules", lambda w: {"ban_days": 7}),
    "getBlacklistRules": after_blacklist_rules(call("GET", HOSPITAL_PATH + "/blacklist-rules")),
    "deleteBlacklistRules": call("DELETE", HOSPITAL_PATH + "/blacklist-rules"),
    "listBlacklist": call("GET", HOSPITAL_PATH + "/blacklist"),
    "putWhitelist": call("PUT", HOSPITAL_PATH + "/whitelist/p-x"),
    "deleteWhitelist": call("DELETE", HOSPITAL_PATH + "/whitelist/p-x"),
    "listNotifications": call("GET", HOSPITAL_PATH + "/notifications?status=dead"),
    "retryNotification": retry_undelivered,
    "getWebhookSecret": call("GET", HOSPITAL_PATH + "/webhook-secret"),
    "rotateWebhookSecret": call("POST", HOSPITAL_PATH + "/webhook-secret"),
    "getAudit": call("GET", "/v1/admin/audit"),
    "putHospital": call("PUT", HOSPITAL_PATH, lambda w: HOSPITAL),
    "getHospital": call("GET", HOSPITAL_PATH),
    "deleteHospital": after_cancelling(call("DELETE", HOSPITAL_PATH)),
    "putDepartment": call("PUT", HOSPITAL_PATH + "/departments/dep2", lambda w: {"name": "x"}),
    "getDepartment": call("GET", HOSPITAL_PATH + "/departments/dep2"),
    "deleteDepartment": call("DELETE", HOSPITAL_PATH + "/departments/dep2"),
    "putDoctor": call(
        "PUT", HOSPITAL_PATH + "/doctors/doc2", lambda w: {"name": "y", "department_id": "dep2"}
    ),
    "getDoctor": call("GET", HOSPITAL_PATH + "/doctors/doc2"),
    "deleteDoctor": call("DELETE", HOSPITAL_PATH + "/doctors/doc2"),
    "listHospitals": call("GET", "/v1/hospitals"),
    "getPublicHospital": call("GET", "/v1/hospitals/{w.hospital}"),
    "listDepartments": call("GET", "/v1/hospitals/{w.hospital}/departments"),
    "listDoctors": call("GET", "/v1/hospitals/{w.hospital}/doctors?department_id=dep2"),
    "putProfile": call("PUT", "/v1/me/profile", lambda w: PROFILE),
    "getProfile": after_profile(call("GET", "/v1/me/profile")),
    "putPatientTags": call(
        "PUT", "/v1/admin/patients/{w.patient}/tags?hospital_id={w.hospital}", lambda w: TAGS
    ),
    "getPatientTags": call("GET", "/v1/admin/patients/{w.patient}/tags?hospital_id={w.hospital}"),
    "listHospitalBookings": call("GET", HOSPITAL_PATH + "/bookings"),
    "streamHospitalLive": call(
        "GET", HOSPITAL_PATH + "/live?from=2031-01-01&to=2031-01-02&seconds=1"
    ),
    "getAnalytics": call("GET", HOSPITAL_PATH + "/analytics?group_by=department"),
    "checkIn": check_in_today,
    "dayEnd": call("POST", HOSPITAL_PATH + "/day-end", lambda w: {"date": hospital_today()}),
    "hisSync": call("POST", HOSPITAL_PATH + "/his-sync?dry_run=true", lambda w: {"schedules": []}),
    "suspendSchedule": call(
        "POST", "/v1/admin/schedules/{w.booked_schedule}/suspend", lambda w: {"reason": "ill"}
    ),
    "joinWaitingRoom": with_room(call("POST", "/v1/schedules/{w.free_schedule}/waiting-room")),
    "getWaitingRoomPlace": with_room(place_in_room),
    "putWaitingRoom": call(
        "PUT", "/v1/admin/schedules/{w.free_schedule}/waiting-room", lambda w: ROOM
    ),
    "getWaitingRoom": with_room(call("GET", "/v1/admin/schedules/{w.free_schedule}/waiting-room")),
    "deleteWaitingRoom": with_room(
        call("DELETE", "/v1/admin/schedules/{w.free_schedule}/waiting-room")
    ),
    "createPayment": payment_of_a_hold,
    "paymentWebhook": signed_notice,
    "healthz": call("GET", "/healthz"),
    "metrics": call("GET", "/metrics"),
    "openapi": call("GET", "/openapi.json"),
    "ceiling": call("GET", "/ceiling"),
    "bookPage": call("GET", "/book"),
    "consolePage": call("GET", "/console"),
    "pageAsset": call("GET", "/web/api.js"),
}


def expected(route: Route, role: str, concerns: str) -> str:
    """What `role` gets: "2xx", "401", "403", "404", or "2xx, none of it" (an answer that
    must not hold the world's hospital); `concerns` is how the request names that hospital:
    "hospital" (path, query or body), "object" (a serial id) or "nothing"."""
    access = route.access
    if access is Access.PUBLIC:
        return "2xx"
    if role == "no token":
        return "401"
    if access is Access.PATIENT:
        return "2xx" if role == "patient" else "403"
    if access is Access.PLATFORM:
        return "2xx" if role == "platform" else "403"
    if access is Access.STAFF and role == "patient":
        return "403"
    if role != "other":
        return "2xx"
    return {"hospital": "403", "object": "404", "nothing": "2xx, none of it"}[concerns]


def concerns(route: Route, sent: Call, world: World) -> str:
    if BY_ID & set(re.findall(r"\{(\w+)\}", route.path)):
        return "object"
    if world.hospital in sent.path or world.hospital in repr(sent.body):
        return "hospital"
    return "nothing"


def check(answer: Answer, want: str, world: World, where: str) -> None:
    if want.startswith("2xx"):
        assert 200 <= answer.status < 300, (where, answer.status, answer.body)
        if want == "2xx, none of it":
            # Invariant 11: nothing of the world's hospital, not even its schedules' ids.
            for secret in (world.hospital, world.booked_schedule, world.free_schedule):
                assert f'"{secret}"'.encode() not in answer.body, (where, answer.body)
        return
    status = int(want)
    problem = answer.json
    assert answer.status == status, (where, answer.status, answer.body)
    if status == 401:
        assert problem["code"] == "unauthorized", where
    elif status == 403:
        assert problem["code"] == "forbidden", where
    else:
        assert problem["code"].endswith("_not_found"), (where, problem)


def route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
async def test_every_route_answers_every_role_as_its_access_says(api: Client, route: Route) -> None:
    sample = SAMPLES.get(route.name)
    assert sample is not None, (
        f"{route.name}: add a sample request to SAMPLES, and decide its Access, before serving it"
    )
    for role in ROLES:
        world = await make_world(api)
        sent = await sample(api, world)
        assert re.fullmatch(
            route.path.replace("{", "(?P<").replace("}", ">[^/]+)"), sent.path.split("?")[0]
        )
        answer = await api.call(
            sent.method, sent.path, token=world.tokens[role], json=sent.body, headers=sent.headers
        )
        want = expected(route, role, concerns(route, sent, world))
        check(answer, want, world, f"{route_id(route)} as {role}")


def test_every_sample_is_a_served_route() -> None:
    assert set(SAMPLES) == {route.name for route in ROUTES}


# --- what the matrix cannot show by itself ---------------------------------------------------


async def test_a_batch_naming_another_hospital_is_refused_whole(api: Client) -> None:
    world = await make_world(api)
    mixed = [schedule_of(world), {**schedule_of(world), "hospital_id": world.stranger}]
    answer = await api.call(
        "POST", "/v1/admin/schedules", token=world.tokens["own"], json={"schedules": mixed}
    )
    answer.problem(403, "forbidden")
    listed = await api.call(
        "GET", f"/v1/schedules?hospital_id={world.stranger}", token=admin_token()
    )
    assert listed.json["schedules"] == []


async def test_a_hospital_administrator_lists_and_audits_its_own_hospital_only(
    api: Client,
) -> None:
    world, elsewhere = await make_world(api), await make_world(api)
    own = world.tokens["own"]
    listed = await api.call("GET", "/v1/schedules?limit=500", token=own)
    assert {s["hospital_id"] for s in listed.json["schedules"]} == {world.hospital}
    assert {s["id"] for s in listed.json["schedules"]} == {
        world.booked_schedule,
        world.free_schedule,
    }
    audit = await api.call("GET", "/v1/admin/audit", token=own)
    assert {s["id"] for s in audit.json["schedules"]} == {
        world.booked_schedule,
        world.free_schedule,
    }
    everything = await api.call("GET", "/v1/admin/audit", token=admin_token())
    assert elsewhere.booked_schedule in {s["id"] for s in everything.json["schedules"]}


async def test_a_hospital_administrator_is_refused_before_its_request_is_read(
    api: Client,
) -> None:
    # 403 before 400: the administrator of another hospital learns nothing from validation.
    world = await make_world(api)
    path = f"/v1/admin/hospitals/{world.hospital}"
    answer = await api.call("PUT", path, token=world.tokens["other"], json={"name": 7})
    answer.problem(403, "forbidden")
    answer = await api.call("PUT", "/v1/admin/hospitals/a%20b", token=world.tokens["other"])
    answer.problem(403, "forbidden")
