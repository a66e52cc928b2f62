"""Payments through HTTP (API.md 1.1): a patient's checkout, the sandbox (`slotrush
sandbox-pay`, a process of its own) completing it and notifying the server by a signed
webhook, and the webhook's refusals."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from core.payments import signing
from server.shapes import payments as payment_shapes
from tests.http.conftest import Client, patient_token, unique
from tests.sandbox import SECRET, complete, signed

WEBHOOK = "/v1/payments/sandbox/webhook"
FEE = 1800


async def test_a_patient_pays_a_hold_and_it_is_booked(
    api: Client, session: aiohttp.ClientSession, sandbox_url: str
) -> None:
    patient = unique("p")
    schedule = await api.create_schedule(fee_cents=FEE, capacity=2)
    hold = (await api.book(schedule["id"], patient)).json["booking"]
    path = f"/v1/bookings/{hold['id']}/payments"

    first = await api.call("POST", path, token=patient_token(patient))
    again = await api.call("POST", path, token=patient_token(patient), json={})

    assert first.status == 201, first.body
    payment = first.shaped(payment_shapes.PaymentEnvelope).payment
    assert again.status == 201 and again.json == first.json
    assert (payment.status, payment.amount_cents, payment.provider) == ("pending", FEE, "sandbox")
    assert payment.checkout_url.startswith(sandbox_url)
    await complete(session, sandbox_url, payment.provider_ref, "succeeded")
    booking: dict[str, object] = {}
    async with asyncio.timeout(30):
        while booking.get("status") != "booked":
            await asyncio.sleep(0.05)
            booking = (
                await api.call("GET", f"/v1/bookings/{hold['id']}", token=patient_token(patient))
            ).json["booking"]
    assert booking["payment"] == {
        "status": "paid",
        "amount_cents": FEE,
        "provider": "sandbox",
        "provider_ref": payment.provider_ref,
    }
    refused = await api.call("POST", path, token=patient_token(patient))
    assert refused.problem(409, "invalid_state")


async def test_another_patients_booking_is_not_found(api: Client) -> None:
    schedule = await api.create_schedule(fee_cents=FEE, capacity=2)
    hold = (await api.book(schedule["id"], unique("p"))).json["booking"]

    answer = await api.call(
        "POST", f"/v1/bookings/{hold['id']}/payments", token=patient_token(unique("p"))
    )

    assert answer.problem(404, "booking_not_found")


def notice(reference: str) -> dict[str, object]:
    return {
        "id": unique("evt"),
        "type": "checkout.declined",
        "created": int(time.time()),
        "data": {
            "checkout_ref": "co_x",
            "reference": reference,
            "amount_cents": FEE,
            "charge_ref": None,
        },
    }


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "t=abc,v1=def",
        "v1=00",
        "stale",
        "forged",
    ],
)
async def test_a_webhook_not_signed_by_the_provider_now_is_bad_signature(
    api: Client, signature: str | None
) -> None:
    body = orjson.dumps(notice("h/1"))
    if signature == "stale":
        signature = signing.sign(SECRET, body, int(time.time()) - 301)
    elif signature == "forged":
        signature = signing.sign("another-secret", body, int(time.time()))
    headers = {} if signature is None else {signing.HEADER: signature}

    answer = await api.call("POST", WEBHOOK, data=body, headers=headers)

    assert answer.problem(400, "bad_signature")


async def test_a_signed_webhook_is_taken_once_and_an_unknown_provider_is_not_found(
    api: Client,
) -> None:
    body, signature = signed(notice("nowhere/1"))
    headers = {signing.HEADER: signature, "Content-Type": "application/json"}

    taken = await api.call("POST", WEBHOOK, data=body, headers=headers)
    unknown = await api.call("POST", "/v1/payments/acme/webhook", data=body, headers=headers)
    garbage_body = b'{"hello": "world"}'
    garbage = await api.call(
        "POST",
        WEBHOOK,
        data=garbage_body,
        headers={signing.HEADER: signing.sign(SECRET, garbage_body, int(time.time()))},
    )

    assert taken.status == 200 and taken.json == {"received": True, "applied": "nothing"}
    assert unknown.problem(404, "not_found")
    assert garbage.problem(400, "invalid_request")
