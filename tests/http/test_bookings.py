"""The patients' endpoints end to end: booking, reading, cancelling, replays and the rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from multidict import CIMultiDict

from server import shapes
from tests.http.conftest import (
    Answer,
    Client,
    admin_token,
    bearer,
    patient_token,
    schedule_in,
    unique,
)


def rfc3339(text: str) -> dt.datetime:
    assert text.endswith("Z"), text
    return dt.datetime.fromisoformat(text)


async def booked(api: Client, schedule_id: str, patient_id: str, **kwargs: Any) -> dict[str, Any]:
    answer = await api.book(schedule_id, patient_id, **kwargs)
    assert answer.status == 201, answer.body
    answer.shaped(shapes.BookingEnvelope)
    booking: dict[str, Any] = answer.json["booking"]
    return booking


async def test_a_booking_has_the_shape_of_api_md(api: Client) -> None:
    schedule = await api.create_schedule(capacity=3)
    patient = unique("p")
    answer = await api.book(schedule["id"], patient, json={})
    assert answer.status == 201
    assert answer.headers["Content-Type"] == "application/json"
    booking = answer.shaped(shapes.BookingEnvelope).booking
    assert booking.schedule_id == schedule["id"]
    assert booking.patient_id == patient
    assert booking.hospital_id == schedule["hospital_id"]
    assert booking.department_id == schedule["department_id"]
    assert booking.visit_date.isoformat() == schedule["visit_date"]
    assert booking.number in (1, 2, 3)
    assert booking.status == "booked" and booking.cancelled_at is None
    created_at = rfc3339(answer.json["booking"]["created_at"])
    assert abs(created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


async def test_every_number_goes_once_then_the_schedule_is_sold_out(api: Client) -> None:
    schedule = await api.create_schedule(capacity=3)
    numbers = [(await booked(api, schedule["id"], unique("p")))["number"] for _ in range(3)]
    assert sorted(numbers) == [1, 2, 3]
    (await api.book(schedule["id"], unique("p"))).problem(409, "sold_out")
    listed = await api.call(
        "GET", f"/v1/schedules?hospital_id={schedule['hospital_id']}", token=admin_token()
    )
    (view,) = listed.json["schedules"]
    assert (view["remaining"], view["status"]) == (0, "sold_out")


async def test_a_patient_sees_and_cancels_only_their_own_bookings(api: Client) -> None:
    schedule = await api.create_schedule()
    owner, other = unique("p"), unique("p")
    booking = await booked(api, schedule["id"], owner)
    path = f"/v1/bookings/{booking['id']}"

    mine = await api.call("GET", path, token=patient_token(owner))
    assert mine.status == 200 and mine.json == {"booking": booking}
    (await api.call("GET", path, token=patient_token(other))).problem(404, "booking_not_found")
    cancel = await api.call("POST", f"{path}/cancel", token=patient_token(other))
    cancel.problem(404, "booking_not_found")
    assert (await api.call("GET", path, token=patient_token(owner))).json["booking"] == booking

    own_list = await api.call("GET", "/v1/me/bookings", token=patient_token(owner))
    assert own_list.status == 200 and own_list.json == {"bookings": [booking], "next_cursor": None}
    own_list.shaped(shapes.BookingPage)
    other_list = await api.call("GET", "/v1/me/bookings", token=patient_token(other))
    assert other_list.json == {"bookings": [], "next_cursor": None}


async def test_cancelling_frees_the_number_and_cancelling_again_changes_nothing(
    api: Client,
) -> None:
    schedule = await api.create_schedule(capacity=1)
    owner = unique("p")
    booking = await booked(api, schedule["id"], owner)
    path = f"/v1/bookings/{booking['id']}/cancel"

    first = await api.call("POST", path, token=patient_token(owner), json={})
    assert first.status == 200
    first.shaped(shapes.BookingEnvelope)
    cancelled = first.json["booking"]
    assert (cancelled["status"], cancelled["cancelled_by"]) == ("cancelled", "patient")
    assert rfc3339(cancelled["cancelled_at"]) >= rfc3339(cancelled["created_at"])
    changed = ("status", "cancelled_at", "cancelled_by")
    assert {k: v for k, v in cancelled.items() if k not in changed} == {
        k: v for k, v in booking.items() if k not in changed
    }
    again = await api.call("POST", path, token=patient_token(owner))
    assert again.status == 200 and again.json == first.json

    successor = await booked(api, schedule["id"], unique("p"))
    assert successor["number"] == booking["number"]


async def test_a_repeated_idempotency_key_replays_the_first_booking(api: Client) -> None:
    schedule = await api.create_schedule(capacity=5)
    patient = unique("p")
    key = {"Idempotency-Key": unique("key")}
    first = await api.book(schedule["id"], patient, headers=key)
    replay = await api.book(schedule["id"], patient, headers=key)
    assert first.status == replay.status == 201
    assert replay.json == first.json
    mine = await api.call("GET", "/v1/me/bookings", token=patient_token(patient))
    assert len(mine.json["bookings"]) == 1
    # Without the key the same request is a new attempt, refused by the rules.
    (await api.book(schedule["id"], patient)).problem(409, "already_booked")


async def test_an_idempotency_key_reused_elsewhere_is_a_conflict(api: Client) -> None:
    hospital = unique("h")
    first, second = await api.create_schedules(
        schedule_in(hospital_id=hospital, department_id="cardiology"),
        schedule_in(hospital_id=hospital, department_id="neurology"),
    )
    patient = unique("p")
    key = {"Idempotency-Key": unique("key")}
    await booked(api, first["id"], patient, headers=key)
    (await api.book(second["id"], patient, headers=key)).problem(422, "idempotency_conflict")
    # A key belongs to one patient: another patient may use the same one.
    await booked(api, second["id"], unique("p"), headers=key)


@pytest.mark.parametrize("key", ["", "k" * 129, "ключ", "tab\there"])
async def test_a_malformed_idempotency_key_is_invalid(api: Client, key: str) -> None:
    schedule = await api.create_schedule()
    answer = await api.book(schedule["id"], unique("p"), headers={"Idempotency-Key": key})
    answer.problem(400, "invalid_request")


async def test_two_idempotency_key_headers_are_invalid(api: Client) -> None:
    schedule = await api.create_schedule()
    headers = CIMultiDict(bearer(patient_token(unique("p"))))
    headers.add("Idempotency-Key", "a")
    headers.add("Idempotency-Key", "b")
    url = f"{api.url}/v1/schedules/{schedule['id']}/bookings"
    async with api.session.post(url, headers=headers) as response:
        answer = Answer(
            response.status, response.headers, response.raw_headers, await response.read()
        )
    answer.problem(400, "invalid_request")


async def test_per_patient_rules_of_the_hospital(api: Client) -> None:
    hospital = unique("h")
    cardio_1, cardio_2, neuro, ortho = await api.create_schedules(
        *(
            schedule_in(hospital_id=hospital, department_id=department)
            for department in ("cardiology", "cardiology", "neurology", "orthopedics")
        )
    )
    patient = unique("p")
    await booked(api, cardio_1["id"], patient)
    (await api.book(cardio_1["id"], patient)).problem(409, "already_booked")
    (await api.book(cardio_2["id"], patient)).problem(409, "department_limit")
    await booked(api, neuro["id"], patient)
    (await api.book(ortho["id"], patient)).problem(409, "daily_limit")

    rules = {"max_per_day": 3, "max_per_department_per_day": 2, "cancel_cutoff_minutes": 0}
    put = await api.call(
        "PUT", f"/v1/admin/hospitals/{hospital}/rules", token=admin_token(), json=rules
    )
    assert put.status == 200 and put.json == rules
    await booked(api, cardio_2["id"], patient)
    (await api.book(ortho["id"], patient)).problem(409, "daily_limit")


async def test_a_blacklisted_patient_books_nothing_until_taken_off(api: Client) -> None:
    schedule = await api.create_schedule()
    hospital, patient = schedule["hospital_id"], unique("p")
    path = f"/v1/admin/hospitals/{hospital}/blacklist/{patient}"
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat()
    put = await api.call("PUT", path, token=admin_token(), json={"until": until})
    assert put.status == 200
    entry = put.shaped(shapes.BlacklistEntry)
    assert (entry.hospital_id, entry.patient_id) == (hospital, patient)
    assert rfc3339(put.json["until"]) == dt.datetime.fromisoformat(until)
    (await api.book(schedule["id"], patient)).problem(403, "blacklisted")

    removed = await api.call("DELETE", path, token=admin_token())
    assert removed.status == 204 and removed.body == b""
    assert (await api.call("DELETE", path, token=admin_token())).status == 204
    await booked(api, schedule["id"], patient)


async def test_an_expired_blacklist_entry_refuses_nothing(api: Client) -> None:
    schedule = await api.create_schedule()
    patient = unique("p")
    path = f"/v1/admin/hospitals/{schedule['hospital_id']}/blacklist/{patient}"
    put = await api.call("PUT", path, token=admin_token(), json={"until": "2001-01-01T00:00:00Z"})
    assert put.status == 200
    await booked(api, schedule["id"], patient)


async def test_not_open_comes_after_authentication(api: Client) -> None:
    opens = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    schedule = await api.create_schedule(opens_at=opens)
    assert schedule["status"] == "not_open" and schedule["opens_at"] == opens
    (await api.book(schedule["id"], unique("p"))).problem(409, "not_open")
    path = f"/v1/schedules/{schedule['id']}/bookings"
    (await api.call("POST", path)).problem(401, "unauthorized")


async def test_cancelling_after_the_cutoff_is_refused(api: Client) -> None:
    schedule = await api.create_schedule()
    hospital, patient = schedule["hospital_id"], unique("p")
    booking = await booked(api, schedule["id"], patient)
    # The visit is 30 days away; a cutoff of 60 days before it has passed.
    rules = {"cancel_cutoff_minutes": 60 * 24 * 60}
    put = await api.call(
        "PUT", f"/v1/admin/hospitals/{hospital}/rules", token=admin_token(), json=rules
    )
    assert put.json == {**rules, "max_per_day": 2, "max_per_department_per_day": 1}
    cancel = await api.call(
        "POST", f"/v1/bookings/{booking['id']}/cancel", token=patient_token(patient)
    )
    cancel.problem(409, "cancel_window_closed")
    still = await api.call("GET", f"/v1/bookings/{booking['id']}", token=patient_token(patient))
    assert still.json["booking"]["status"] == "booked"


# Texts that name no schedule or booking: never a 400, never a 500, always that thing's 404.
HOSTILE_IDS = [
    "999999999",
    "0",
    "-1",
    "01",
    "1.5",
    "1e3",
    "abc",
    "%20",
    "9223372036854775807",
    "9223372036854775808",
    "9" * 40,
    "x" * 2000,
    "%E2%82%AC",
    "1%00",
]


@pytest.mark.parametrize("raw_id", HOSTILE_IDS)
async def test_ids_that_name_nothing_are_not_found(api: Client, raw_id: str) -> None:
    patient = patient_token(unique("p"))
    schedule_path = f"/v1/schedules/{raw_id}"
    (await api.call("GET", schedule_path, token=patient)).problem(404, "schedule_not_found")
    book = await api.call("POST", f"{schedule_path}/bookings", token=patient)
    book.problem(404, "schedule_not_found")
    booking_path = f"/v1/bookings/{raw_id}"
    (await api.call("GET", booking_path, token=patient)).problem(404, "booking_not_found")
    cancel = await api.call("POST", f"{booking_path}/cancel", token=patient)
    cancel.problem(404, "booking_not_found")


@pytest.mark.parametrize(
    "body",
    [b'{"seat": 1}', b"[]", b"null", b"1", b'"{}"', b"{", b"\xff\xfe", b"{}{}"],
)
async def test_action_bodies_take_no_fields(api: Client, body: bytes) -> None:
    schedule = await api.create_schedule()
    answer = await api.book(schedule["id"], unique("p"), data=body)
    answer.problem(400, "invalid_request")


@pytest.mark.parametrize("body", [None, b"", b"{}", b" { } "])
async def test_an_action_body_may_be_empty(api: Client, body: bytes | None) -> None:
    schedule = await api.create_schedule()
    answer = await api.book(schedule["id"], unique("p"), data=body)
    assert answer.status == 201, answer.body
