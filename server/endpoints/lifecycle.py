"""Hospital operations on the booking lifecycle (API.md 1.1): check-in at the counter,
day-end settlement on demand and suspending a schedule, by the platform or the hospital's
own administrator (Access.STAFF). The service is core.operations.
"""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web

from core.domain import Code
from server import auth, shapes
from server import validation as parse
from server.appkeys import OPERATIONS, SOLD_OUT
from server.encoding import booking_out, json_response, schedule_out, settlement_out
from server.openapi import ADMIN, BODY, errors, json_body, ok
from server.route import Access, Route
from server.shapes import lifecycle as lifecycle_shapes

_CHECK_IN: Final = msgspec.json.Decoder(lifecycle_shapes.CheckInIn)
_DAY_END: Final = msgspec.json.Decoder(lifecycle_shapes.DayEndIn)
_SUSPEND: Final = msgspec.json.Decoder(lifecycle_shapes.SuspendIn)


async def check_in(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    who = auth.principal(request)
    code = parse.decode(await request.read(), _CHECK_IN).verification_code
    # Wrong codes are counted per staff member: the platform's tokens share one count.
    staff = who.subject or str(who.role)
    booking = await request.app[OPERATIONS].check_in(hospital_id, staff, code)
    return json_response(shapes.BookingEnvelope(booking=booking_out(booking)))


async def day_end(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    visit_date = parse.decode(await request.read(), _DAY_END).date
    settled = await request.app[OPERATIONS].day_end(hospital_id, visit_date)
    return json_response(settlement_out(settled))


async def suspend(request: web.Request) -> web.Response:
    who = auth.staff(request)
    schedule_id = parse.path_id(request.match_info["schedule_id"], Code.SCHEDULE_NOT_FOUND)
    reason = parse.decode(await request.read(), _SUSPEND).reason
    view = await request.app[OPERATIONS].suspend(schedule_id, reason, within=who.hospital_id)
    # Closed now: this process must not answer sold out from memory for it.
    request.app[SOLD_OUT].forget(str(schedule_id))
    return json_response(schedule_out(view))


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "POST",
        "/v1/hospitals/{hospital_id}/check-ins",
        check_in,
        "checkIn",
        {
            "tags": ["admin"],
            "summary": "Check a patient in with the verification code: booked -> attended.",
            "description": (
                "Only a booking of the hospital's today, still booked; a code is single use. "
                "Any other code is booking_not_found, and after 10 wrong codes within 5 "
                "minutes a staff member's tries are rate_limited until that window ends."
            ),
            "requestBody": json_body(lifecycle_shapes.CheckInIn),
            "responses": {
                **ok(200, "The attended booking", shapes.BookingEnvelope),
                **errors(*BODY, Code.BOOKING_NOT_FOUND, Code.RATE_LIMITED, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "POST",
        "/v1/admin/hospitals/{hospital_id}/day-end",
        day_end,
        "dayEnd",
        {
            "tags": ["admin"],
            "summary": "Settle a visit date now: what is still booked becomes a no-show.",
            "description": (
                "Runs by itself at the hospital's settle_at local time too. Idempotent and "
                "safe to run concurrently; unpaid holds are left to expiry. A date after the "
                "hospital's today is invalid_state: its patients may still come."
            ),
            "requestBody": json_body(lifecycle_shapes.DayEndIn),
            "responses": {
                **ok(200, "The settlement", lifecycle_shapes.Settlement),
                **errors(*BODY, Code.HOSPITAL_NOT_FOUND, Code.INVALID_STATE, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "POST",
        "/v1/admin/schedules/{schedule_id}/suspend",
        suspend,
        "suspendSchedule",
        {
            "tags": ["admin"],
            "summary": "Stop a session: closed to bookings, every held booking cancelled.",
            "description": (
                "Unpaid and booked bookings become cancelled by the hospital; the schedule's "
                "status is `suspended` (an extension). Suspending again changes nothing."
            ),
            "requestBody": json_body(lifecycle_shapes.SuspendIn),
            "responses": {
                **ok(200, "The suspended schedule", shapes.Schedule),
                **errors(*BODY, Code.SCHEDULE_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
