"""Patients: browse schedules, book a number, see and cancel their own bookings.

The booking handler answers a schedule remembered as sold out before looking at the request
at all (API.md's one exception to "authentication first").
"""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web
from msgspec import UNSET

from core.domain import Booking, Code
from core.errors import SlotrushError
from server import auth, shapes
from server import validation as parse
from server.appkeys import ADMISSION, SERVICE, SNAPSHOTS, SOLD_OUT
from server.caching import Caching, cached_json, encoded_json
from server.cursors import page_request
from server.encoding import booking_out, json_response, schedule_out
from server.endpoints.waiting_room import ADMISSION_PARAMETER, require_admission
from server.fastpath import sold_out_response
from server.openapi import (
    AUTH,
    BODY,
    EMPTY_BODY,
    IDEMPOTENCY_KEY,
    IF_NONE_MATCH,
    errors,
    ok,
    ok_cached,
    query_parameters,
)
from server.route import Access, Route
from server.snapshots import Snapshot

IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
_SCHEDULES_MAX_AGE: Final = 1.0
BOOKING_REFUSALS: Final = (
    Code.BLACKLISTED,
    Code.SOLD_OUT,
    Code.ALREADY_BOOKED,
    Code.DAILY_LIMIT,
    Code.DEPARTMENT_LIMIT,
    Code.NOT_OPEN,
    Code.SCHEDULE_CLOSED,
    Code.IDEMPOTENCY_CONFLICT,
    Code.ADMISSION_REQUIRED,
)


async def _empty_body(request: web.Request) -> None:
    if request.body_exists:
        parse.no_fields(await request.read())


async def list_schedules(request: web.Request) -> web.Response:
    who = await auth.reader(request)
    filters = parse.query(request.query, shapes.ScheduleFilters)
    if filters.hospital_id is not UNSET:
        auth.confine(who, filters.hospital_id)
    snapshot = await schedules_snapshot(request.app, filters, who.hospital_id)
    return encoded_json(request, snapshot.body, snapshot.etag, Caching.TOKEN)


async def schedules_snapshot(
    app: web.Application, filters: shapes.ScheduleFilters, scope: str | None
) -> Snapshot:
    """The schedule page `filters` ask for, as seen by a caller confined to `scope` (None:
    the platform or a patient). API.md lets `remaining` lag a second: every poll of the
    same page within it, and every console's live stream, share one read."""
    paging = page_request("listSchedules", filters, int)

    async def read() -> shapes.SchedulePage:
        page = await app[SERVICE].schedule_page(
            parse.schedule_query(filters, scope), after=paging.after, limit=paging.limit
        )
        return shapes.SchedulePage(
            schedules=[schedule_out(v) for v in page.items], next_cursor=paging.next_cursor(page)
        )

    key = ("schedules", scope, msgspec.json.encode(filters))
    return await app[SNAPSHOTS].get(key, read, max_age=_SCHEDULES_MAX_AGE)


async def get_schedule(request: web.Request) -> web.Response:
    who = await auth.reader(request)
    schedule_id = parse.path_id(request.match_info["schedule_id"], Code.SCHEDULE_NOT_FOUND)
    view = await request.app[SERVICE].schedule_view(schedule_id, within=who.hospital_id)
    return cached_json(request, schedule_out(view), Caching.TOKEN)


async def book(request: web.Request) -> web.Response:
    raw_id = request.match_info["schedule_id"]
    sold_out = request.app[SOLD_OUT]
    # A request with an Idempotency-Key may be the retry of one that booked: it must get its
    # first answer back (API.md), so only key-less requests take the sold-out fast path.
    if IDEMPOTENCY_KEY_HEADER not in request.headers:
        remembered = sold_out.answer(raw_id)
        if remembered is None:
            remembered = await sold_out.confirm(raw_id)
        if remembered is not None:
            return remembered
    patient_id = await auth.patient(request)
    # A full waiting line refuses at once, before the body is read or a store is touched.
    request.app[ADMISSION].refuse_if_full()
    schedule_id = parse.path_id(raw_id, Code.SCHEDULE_NOT_FOUND)
    key = parse.idempotency_key(request.headers)
    try:
        await require_admission(request, schedule_id, patient_id)
    except SlotrushError:
        # The retry of a booking made while admitted gets its first answer (API.md), though
        # its admission has lapsed since.
        replay = key and await request.app[SERVICE].replay(patient_id, schedule_id, key)
        if not replay:
            raise
        return _booked(replay.booking)
    await _empty_body(request)
    try:
        async with request.app[ADMISSION]:
            outcome = await request.app[SERVICE].book(patient_id, schedule_id, key)
    except SlotrushError as exc:
        if exc.code is not Code.SOLD_OUT:
            raise
        sold_out.remember(raw_id)
        return sold_out_response()
    return _booked(outcome.booking)


def _booked(booking: Booking) -> web.Response:
    return json_response(shapes.BookingEnvelope(booking=booking_out(booking)), status=201)


async def get_booking(request: web.Request) -> web.Response:
    patient_id = await auth.patient(request)
    booking_id = parse.path_id(request.match_info["booking_id"], Code.BOOKING_NOT_FOUND)
    booking = await request.app[SERVICE].booking(patient_id, booking_id)
    return cached_json(
        request, shapes.BookingEnvelope(booking=booking_out(booking)), Caching.PERSONAL
    )


async def cancel_booking(request: web.Request) -> web.Response:
    patient_id = await auth.patient(request)
    booking_id = parse.path_id(request.match_info["booking_id"], Code.BOOKING_NOT_FOUND)
    await _empty_body(request)
    booking = await request.app[SERVICE].cancel(patient_id, booking_id)
    # The number is free again: this process must not answer sold out from memory any more.
    request.app[SOLD_OUT].forget(str(booking.schedule_id))
    return json_response(shapes.BookingEnvelope(booking=booking_out(booking)))


async def my_bookings(request: web.Request) -> web.Response:
    patient_id = await auth.patient(request)
    paging = page_request("listMyBookings", parse.query(request.query, shapes.PageQuery), int)
    page = await request.app[SERVICE].patient_bookings(
        patient_id, before=paging.after, limit=paging.limit
    )
    answer = shapes.BookingPage(
        bookings=[booking_out(b) for b in page.items], next_cursor=paging.next_cursor(page)
    )
    return cached_json(request, answer, Caching.PERSONAL)


ROUTES: Final[tuple[Route, ...]] = (
    # The hottest route first: the router tries routes sharing a prefix in this order.
    Route(
        "POST",
        "/v1/schedules/{schedule_id}/bookings",
        book,
        "book",
        {
            "tags": ["patients"],
            "summary": "Book the next free number of a schedule.",
            "description": (
                "Once a schedule is sold out, this answers the same sold-out bytes for up to one "
                "second without checking the token."
            ),
            "parameters": [IDEMPOTENCY_KEY, ADMISSION_PARAMETER],
            "requestBody": EMPTY_BODY,
            "responses": {
                **ok(
                    201,
                    "Booked (or the replay of an earlier booking with this key)",
                    shapes.BookingEnvelope,
                ),
                **errors(*BODY, Code.SCHEDULE_NOT_FOUND, *BOOKING_REFUSALS, *AUTH),
            },
        },
        access=Access.PATIENT,
    ),
    Route(
        "GET",
        "/v1/schedules",
        list_schedules,
        "listSchedules",
        {
            "tags": ["patients"],
            "summary": "Schedules, filtered, one page at a time in id order.",
            "description": (
                "A hospital administrator sees its own hospital's only (naming another in "
                "`hospital_id` is forbidden)."
            ),
            "parameters": [*query_parameters(shapes.ScheduleFilters), IF_NONE_MATCH],
            "responses": {
                **ok_cached("A page of schedules", shapes.SchedulePage),
                **errors(Code.INVALID_REQUEST, Code.FORBIDDEN, *AUTH),
            },
        },
        access=Access.TOKEN,
    ),
    Route(
        "GET",
        "/v1/schedules/{schedule_id}",
        get_schedule,
        "getSchedule",
        {
            "tags": ["patients"],
            "summary": "One schedule.",
            "description": (
                "Another hospital's schedule is not found for a hospital administrator."
            ),
            "parameters": [IF_NONE_MATCH],
            "responses": {
                **ok_cached("The schedule", shapes.Schedule),
                **errors(Code.SCHEDULE_NOT_FOUND, *AUTH),
            },
        },
        access=Access.TOKEN,
    ),
    Route(
        "GET",
        "/v1/bookings/{booking_id}",
        get_booking,
        "getBooking",
        {
            "tags": ["patients"],
            "summary": "One of the caller's bookings.",
            "parameters": [IF_NONE_MATCH],
            "responses": {
                **ok_cached("The booking", shapes.BookingEnvelope),
                **errors(Code.BOOKING_NOT_FOUND, *AUTH),
            },
        },
        access=Access.PATIENT,
    ),
    Route(
        "POST",
        "/v1/bookings/{booking_id}/cancel",
        cancel_booking,
        "cancelBooking",
        {
            "tags": ["patients"],
            "summary": "Cancel one of the caller's bookings; a repeat returns it unchanged.",
            "description": (
                "An unpaid hold or a booked booking; an expired, attended or no-show one is "
                "invalid_state."
            ),
            "requestBody": EMPTY_BODY,
            "responses": {
                **ok(200, "The cancelled booking", shapes.BookingEnvelope),
                **errors(
                    *BODY,
                    Code.BOOKING_NOT_FOUND,
                    Code.CANCEL_WINDOW_CLOSED,
                    Code.INVALID_STATE,
                    *AUTH,
                ),
            },
        },
        access=Access.PATIENT,
    ),
    Route(
        "GET",
        "/v1/me/bookings",
        my_bookings,
        "listMyBookings",
        {
            "tags": ["patients"],
            "summary": "The caller's bookings, newest first, one page at a time.",
            "parameters": [*query_parameters(shapes.PageQuery), IF_NONE_MATCH],
            "responses": {
                **ok_cached("A page of bookings", shapes.BookingPage),
                **errors(Code.INVALID_REQUEST, *AUTH),
            },
        },
        access=Access.PATIENT,
    ),
)
