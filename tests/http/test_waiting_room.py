"""Waiting rooms through HTTP: while a schedule's room is open only admitted patients book,
with their own admission token; joining is idempotent; a closed room asks for nothing."""

from __future__ import annotations

import asyncio

from tests.http.conftest import Answer, Client, admin_token, patient_token, unique

ROOM = "/v1/admin/schedules/{}/waiting-room"
PLACE = "/v1/schedules/{}/waiting-room"


async def open_room(api: Client, schedule_id: str, **settings: object) -> Answer:
    body = {"admit_per_second": 50, **settings}
    answer = await api.call("PUT", ROOM.format(schedule_id), token=admin_token(), json=body)
    assert answer.status == 200, answer.body
    return answer


async def admitted(api: Client, schedule_id: str, patient: str) -> dict[str, object]:
    """Join, then ask until admitted; the last place answered."""
    token = patient_token(patient)
    place = (await api.call("POST", PLACE.format(schedule_id), token=token)).json
    for _ in range(100):
        if place["status"] == "admitted":
            return place
        await asyncio.sleep(0.05)
        headers = {"Waiting-Room-Token": place["position_token"]}
        answer = await api.call("GET", PLACE.format(schedule_id), token=token, headers=headers)
        assert answer.status == 200, answer.body
        place = answer.json
    raise AssertionError(f"{patient} never admitted: {place}")


async def test_only_admitted_patients_book_while_the_room_is_open(api: Client) -> None:
    schedule = await api.create_schedule(capacity=5)
    await open_room(api, schedule["id"])
    patient, other = unique("p"), unique("p")
    (await api.book(schedule["id"], patient)).problem(403, "admission_required")
    place = await admitted(api, schedule["id"], patient)
    admission = {"Waiting-Room-Admission": str(place["admission_token"])}
    # Another patient's admission token is no admission.
    (await api.book(schedule["id"], other, headers=admission)).problem(403, "admission_required")
    forged = {"Waiting-Room-Admission": str(place["position_token"])}
    (await api.book(schedule["id"], patient, headers=forged)).problem(403, "admission_required")
    booked = await api.book(schedule["id"], patient, headers=admission)
    assert booked.status == 201, booked.body
    room = await api.call("GET", ROOM.format(schedule["id"]), token=admin_token())
    assert room.json["admitted"] == 1 and room.json["waiting"] == 0


async def test_a_keyed_retry_gets_its_booking_without_its_admission(api: Client) -> None:
    schedule = await api.create_schedule(capacity=5)
    await open_room(api, schedule["id"])
    patient = unique("p")
    place = await admitted(api, schedule["id"], patient)
    keyed = {"Idempotency-Key": unique("key")}
    admission = {"Waiting-Room-Admission": str(place["admission_token"])}
    booked = await api.book(schedule["id"], patient, headers={**keyed, **admission})
    assert booked.status == 201, booked.body
    # The retry lost its admission (expired, or the client dropped it): its first answer.
    retried = await api.book(schedule["id"], patient, headers=keyed)
    assert retried.status == 201, retried.body
    assert retried.json["booking"]["id"] == booked.json["booking"]["id"]
    # Without a key there is nothing to replay: the room still asks for an admission.
    (await api.book(schedule["id"], patient)).problem(403, "admission_required")
    fresh_key = {"Idempotency-Key": unique("key")}
    (await api.book(schedule["id"], patient, headers=fresh_key)).problem(403, "admission_required")


async def test_joining_again_keeps_the_place(api: Client) -> None:
    schedule = await api.create_schedule(capacity=5)
    await open_room(api, schedule["id"], admit_per_second=0.001)
    first, second = unique("p"), unique("p")
    for patient in (first, second, first):
        answer = await api.call("POST", PLACE.format(schedule["id"]), token=patient_token(patient))
        assert answer.status == 200, answer.body
    assert (answer.json["position"], answer.json["arrival"], answer.json["waiting"]) == (1, 1, 2)
    assert answer.json["status"] == "waiting"


async def test_asking_needs_ones_own_position_token(api: Client) -> None:
    schedule = await api.create_schedule(capacity=5)
    await open_room(api, schedule["id"], admit_per_second=0.001)
    patient = unique("p")
    joined = await api.call("POST", PLACE.format(schedule["id"]), token=patient_token(patient))
    path, token = PLACE.format(schedule["id"]), joined.json["position_token"]
    (await api.call("GET", path, token=patient_token(patient))).problem(403, "room_token_invalid")
    stranger = patient_token(unique("p"))
    headers = {"Waiting-Room-Token": token}
    (await api.call("GET", path, token=stranger, headers=headers)).problem(
        403, "room_token_invalid"
    )


async def test_without_a_room_nothing_changes(api: Client) -> None:
    schedule = await api.create_schedule(capacity=5)
    path = PLACE.format(schedule["id"])
    (await api.call("POST", path, token=patient_token(unique("p")))).problem(
        404, "waiting_room_not_found"
    )
    await open_room(api, schedule["id"])
    closed = await api.call("DELETE", ROOM.format(schedule["id"]), token=admin_token())
    assert closed.status == 204
    # This server forgot the room when it closed it; booking needs no token again.
    answer = await api.book(schedule["id"], unique("p"))
    assert answer.status == 201, answer.body
