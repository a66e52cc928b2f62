"""Payments (API.md 1.1): a patient opens the checkout of an unpaid hold; a provider tells
how it ended through a signed webhook. The service is core.payments.service."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from core.domain import Code
from core.payments.service import Started, UnknownProvider
from core.payments.signing import HEADER
from server import auth
from server import validation as parse
from server.appkeys import PAYMENTS, SERVICE
from server.encoding import json_response
from server.openapi import AUTH, BODY, EMPTY_BODY, errors, ok
from server.problems import HttpCode
from server.route import Access, Route
from server.shapes import payments as payment_shapes


def checkout_out(started: Started) -> payment_shapes.PaymentEnvelope:
    payment, booking = started.payment, started.booking
    return payment_shapes.PaymentEnvelope(
        payment=payment_shapes.PaymentCheckout(
            booking_id=str(booking.id),
            status=booking.payment_status,
            amount_cents=payment.amount_cents,
            provider=payment.provider,
            provider_ref=payment.checkout_ref or "",
            checkout_url=payment.checkout_url or "",
        )
    )


async def create_payment(request: web.Request) -> web.Response:
    patient_id = await auth.patient(request)
    booking_id = parse.path_id(request.match_info["booking_id"], Code.BOOKING_NOT_FOUND)
    if request.body_exists:
        parse.no_fields(await request.read())
    booking = await request.app[SERVICE].booking(patient_id, booking_id)
    started = await request.app[PAYMENTS].checkout(booking)
    return json_response(checkout_out(started), status=201)


async def webhook(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        applied = await request.app[PAYMENTS].receive(
            request.match_info["provider"], request.headers.get(HEADER), body
        )
    except UnknownProvider:
        raise web.HTTPNotFound() from None
    return json_response(payment_shapes.WebhookReceipt(received=True, applied=applied))


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "POST",
        "/v1/bookings/{booking_id}/payments",
        create_payment,
        "createPayment",
        {
            "tags": ["patients"],
            "summary": "Open the checkout of an unpaid hold (pending_payment).",
            "description": (
                "Idempotent while a payment of the booking is pending: asking again answers "
                "the same checkout. A booking that is not pending_payment is invalid_state; "
                "a provider that does not answer in time is payment_provider_unavailable."
            ),
            "requestBody": EMPTY_BODY,
            "responses": {
                **ok(201, "The pending payment and its checkout", payment_shapes.PaymentEnvelope),
                **errors(
                    *BODY,
                    Code.BOOKING_NOT_FOUND,
                    Code.INVALID_STATE,
                    Code.PAYMENT_PROVIDER_UNAVAILABLE,
                    *AUTH,
                ),
            },
        },
        access=Access.PATIENT,
    ),
    Route(
        "POST",
        "/v1/payments/{provider}/webhook",
        webhook,
        "paymentWebhook",
        {
            "tags": ["payments"],
            "summary": "A payment provider's signed notice of how a checkout ended.",
            "description": (
                f"Signed in `{HEADER}: t=<unix>,v1=<hex>` (HMAC-SHA256 of the raw body with "
                "the provider's secret); refused with bad_signature if wrong or more than 5 "
                "minutes old. Duplicates and out-of-order notices change nothing twice; a "
                "payment for a booking no longer held is refunded. An unknown provider is "
                "not_found."
            ),
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                **ok(200, "The notice was taken", payment_shapes.WebhookReceipt),
                **errors(*BODY, Code.BAD_SIGNATURE, HttpCode.NOT_FOUND),
            },
        },
        access=Access.PUBLIC,
    ),
)
