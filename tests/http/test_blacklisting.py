"""Automatic blacklisting and notifications over HTTP (API.md 1.1 and docs/API.md): rules in
and out, a patient crossing them refused `blacklisted` with the events listed, the
whitelist, the dead letters, sending one again and the webhook secret."""

from __future__ import annotations

import asyncpg

from server.shapes import blacklisting as shapes
from tests.http.conftest import Client, admin_token, patient_token, unique

HOSPITAL = {"name": "H", "timezone": "UTC"}


def hospital_path(hospital: str) -> str:
    return f"/v1/admin/hospitals/{hospital}"


async def new_hospital(api: Client) -> str:
    hospital = unique("h")
    answer = await api.call("PUT", hospital_path(hospital), token=admin_token(), json=HOSPITAL)
    assert answer.status == 200, answer.body
    return hospital


async def test_rules_in_and_out(api: Client) -> None:
    hospital, admin = await new_hospital(api), admin_token()
    rules = hospital_path(hospital) + "/blacklist-rules"
    (await api.call("GET", rules, token=admin)).problem(404, "blacklist_rules_not_found")

    put = await api.call("PUT", rules, token=admin, json={"max_no_shows": 1, "ban_days": 7.0})
    assert put.status == 200
    assert put.shaped(shapes.BlacklistRules) == shapes.BlacklistRules(max_no_shows=1, ban_days=7)
    assert (await api.call("GET", rules, token=admin)).json == put.json

    for bad in ({"max_cancellations": 0}, {"window_days": 3651}, {"ban_days": "7"}, {"x": 1}):
        (await api.call("PUT", rules, token=admin, json=bad)).problem(400, "invalid_request")
    unknown = hospital_path(unique("h")) + "/blacklist-rules"
    (await api.call("PUT", unknown, token=admin, json={})).problem(404, "hospital_not_found")

    assert (await api.call("DELETE", rules, token=admin)).status == 204
    (await api.call("GET", rules, token=admin)).problem(404, "blacklist_rules_not_found")


async def test_crossing_the_rules_blacklists_with_the_events_listed(api: Client) -> None:
    hospital, admin, patient = await new_hospital(api), admin_token(), unique("p")
    path = hospital_path(hospital)
    rules = {"max_cancellations": 2, "late_cancel_minutes": 0}
    assert (await api.call("PUT", path + "/blacklist-rules", token=admin, json=rules)).status == 200
    cancelled = []
    for doctor in ("d1", "d2"):
        schedule = await api.create_schedule(hospital_id=hospital, doctor_id=doctor)
        booking = (await api.book(schedule["id"], patient)).json["booking"]
        cancel = await api.call(
            "POST", f"/v1/bookings/{booking['id']}/cancel", token=patient_token(patient)
        )
        assert cancel.status == 200, cancel.body
        cancelled.append(booking["id"])

    listed = await api.call("GET", path + "/blacklist", token=admin)
    page = listed.shaped(shapes.BlacklistPage)
    ((entry),) = page.entries
    assert (entry.patient_id, entry.source, page.next_cursor) == (patient, "automatic", None)
    assert [e.booking_id for e in entry.events] == cancelled
    later = await api.create_schedule(hospital_id=hospital, doctor_id="d3", department_id="x")
    (await api.book(later["id"], patient)).problem(403, "blacklisted")


async def test_a_whitelisted_patient_is_spared(api: Client) -> None:
    hospital, admin, patient = await new_hospital(api), admin_token(), unique("p")
    path = hospital_path(hospital)
    assert (
        await api.call("PUT", path + "/blacklist-rules", token=admin, json={"max_cancellations": 1})
    ).status == 200
    put = await api.call("PUT", f"{path}/whitelist/{patient}", token=admin)
    assert put.shaped(shapes.WhitelistEntry).patient_id == patient
    schedule = await api.create_schedule(hospital_id=hospital)
    booking = (await api.book(schedule["id"], patient)).json["booking"]
    token = patient_token(patient)
    assert (
        await api.call("POST", f"/v1/bookings/{booking['id']}/cancel", token=token)
    ).status == 200
    assert (await api.call("GET", path + "/blacklist", token=admin)).json["entries"] == []
    assert (await api.call("DELETE", f"{path}/whitelist/{patient}", token=admin)).status == 204


async def test_dead_letters_listed_and_sent_again(
    api: Client, shared_ledger: asyncpg.Connection
) -> None:
    hospital, admin = await new_hospital(api), admin_token()
    path = hospital_path(hospital)
    hooked = {**HOSPITAL, "webhook_url": "http://127.0.0.1:9/hooks"}
    assert (await api.call("PUT", path, token=admin, json=hooked)).status == 200
    schedule = await api.create_schedule(hospital_id=hospital)
    booking = (await api.book(schedule["id"], unique("p"))).json["booking"]
    await shared_ledger.execute(
        "UPDATE notifications SET status = 'dead', attempts = 8, last_error = 'HTTP 500'"
        " WHERE hospital_id = $1",
        hospital,
    )

    dead = await api.call("GET", path + "/notifications?status=dead", token=admin)
    (notice,) = dead.shaped(shapes.NotificationPage).notifications
    assert (notice.kind, notice.dedupe_id, notice.last_error) == (
        "confirmed",
        f"confirmed/{booking['id']}",
        "HTTP 500",
    )
    assert notice.data["booking"]["booking_id"] == booking["id"]
    (await api.call("GET", path + "/notifications?status=lost", token=admin)).problem(
        400, "invalid_request"
    )

    retry = path + f"/notifications/{notice.id}/retry"
    assert (await api.call("POST", retry, token=admin)).status == 202
    again = await shared_ledger.fetchrow(
        "SELECT status, attempts FROM notifications WHERE hospital_id = $1", hospital
    )
    assert again["status"] == "pending" and again["attempts"] <= 1
    missing = path + "/notifications/999999999/retry"
    (await api.call("POST", missing, token=admin)).problem(404, "notification_not_found")


async def test_the_webhook_secret_rotates(api: Client) -> None:
    hospital, admin = await new_hospital(api), admin_token()
    secret = hospital_path(hospital) + "/webhook-secret"
    first = (await api.call("GET", secret, token=admin)).shaped(shapes.WebhookSecret).secret
    rotated = (await api.call("POST", secret, token=admin)).shaped(shapes.WebhookSecret).secret
    assert len(first) == len(rotated) == 64 and first != rotated
    assert (await api.call("GET", secret, token=admin)).json["secret"] == rotated
    unknown = hospital_path(unique("h")) + "/webhook-secret"
    (await api.call("GET", unknown, token=admin)).problem(404, "hospital_not_found")
