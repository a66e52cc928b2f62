"""Waiting rooms (slotrush extension): an administrator opens a room for a schedule's
opening; patients join it, ask where they stand, and book with the admission token it gives
them once admitted. The service is core.waiting_room; the booking route asks
`require_admission` while a room is open.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec
from aiohttp import web

from core.domain import Code
from core.errors import SlotrushError
from core.waiting_room import Place, RoomConfig
from server import auth
from server import validation as parse
from server.appkeys import OPEN_ROOMS, ROOMS, SERVICE
from server.encoding import json_response
from server.openapi import ADMIN, AUTH, BODY, EMPTY_BODY, errors, json_body, ok
from server.route import Access, Route
from server.shapes import waiting_room as room_shapes

POSITION_HEADER: Final = "Waiting-Room-Token"
ADMISSION_HEADER: Final = "Waiting-Room-Admission"
_ROOM_IN: Final = msgspec.json.Decoder(room_shapes.WaitingRoomIn)
_TOKEN_PARAMETER: Final = {
    "name": POSITION_HEADER,
    "in": "header",
    "required": True,
    "description": "The position token the join answered.",
    "schema": {"type": "string"},
}
ADMISSION_PARAMETER: Final = {
    "name": ADMISSION_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "While the schedule's waiting room is open: the admission token it gave this patient "
        "(else 403 admission_required)."
    ),
    "schema": {"type": "string"},
}


async def require_admission(request: web.Request, schedule_id: int, patient_id: str) -> None:
    """403 admission_required unless the schedule has no room open now, or the request
    carries this patient's unexpired admission token for it (no store round trip)."""
    if not await request.app[OPEN_ROOMS].is_open(schedule_id):
        return
    token = request.headers.get(ADMISSION_HEADER)
    if token is None:
        raise SlotrushError(
            Code.ADMISSION_REQUIRED,
            f"this schedule's waiting room is open: book with its {ADMISSION_HEADER} token",
        )
    request.app[ROOMS].check_admission(token, schedule_id, patient_id)


async def _staff_schedule(request: web.Request) -> tuple[int, dt.datetime]:
    who = auth.staff(request)
    schedule_id = parse.path_id(request.match_info["schedule_id"], Code.SCHEDULE_NOT_FOUND)
    view = await request.app[SERVICE].schedule_view(schedule_id, within=who.hospital_id)
    return schedule_id, view.schedule.opens_at


async def _room_out(request: web.Request, config: RoomConfig) -> web.Response:
    counts = await request.app[ROOMS].counts(config.schedule_id)
    return json_response(
        room_shapes.WaitingRoom(
            schedule_id=str(config.schedule_id),
            opens_at=config.opens_at,
            closes_at=config.closes_at,
            admit_per_second=config.admit_per_second,
            admission_seconds=config.admission_seconds,
            abandon_seconds=config.abandon_seconds,
            waiting=counts.waiting,
            arrivals=counts.arrivals,
            admitted=counts.admitted,
            abandoned=counts.abandoned,
        )
    )


async def put_room(request: web.Request) -> web.Response:
    schedule_id, opens_at = await _staff_schedule(request)
    wanted = parse.decode(await request.read(), _ROOM_IN)
    active_from = max(opens_at, dt.datetime.now(dt.UTC))
    config = RoomConfig(
        schedule_id=schedule_id,
        opens_at=opens_at,
        closes_at=active_from + dt.timedelta(minutes=wanted.active_minutes),
        admit_per_second=wanted.admit_per_second,
        admission_seconds=wanted.admission_seconds,
        abandon_seconds=wanted.abandon_seconds,
    )
    await request.app[ROOMS].configure(config)
    request.app[OPEN_ROOMS].forget(schedule_id)
    return await _room_out(request, config)


async def get_room(request: web.Request) -> web.Response:
    schedule_id, _ = await _staff_schedule(request)
    config = await request.app[ROOMS].config(schedule_id)
    if config is None:
        raise SlotrushError(Code.WAITING_ROOM_NOT_FOUND)
    return await _room_out(request, config)


async def delete_room(request: web.Request) -> web.Response:
    schedule_id, _ = await _staff_schedule(request)
    await request.app[ROOMS].close(schedule_id)
    request.app[OPEN_ROOMS].forget(schedule_id)
    return web.Response(status=204)


async def join(request: web.Request) -> web.Response:
    patient_id = await auth.patient(request)
    schedule_id = parse.path_id(request.match_info["schedule_id"], Code.SCHEDULE_NOT_FOUND)
    if request.body_exists:
        parse.no_fields(await request.read())
    place = await request.app[ROOMS].join(schedule_id, patient_id)
    return json_response(_place_out(schedule_id, place))


async def stand(request: web.Request) -> web.Response:
    patient_id = await auth.patient(request)
    schedule_id = parse.path_id(request.match_info["schedule_id"], Code.SCHEDULE_NOT_FOUND)
    token = request.headers.get(POSITION_HEADER)
    if token is None:
        raise SlotrushError(Code.ROOM_TOKEN_INVALID, f"send the {POSITION_HEADER} header")
    place = await request.app[ROOMS].stand(schedule_id, patient_id, token)
    return json_response(_place_out(schedule_id, place))


def _place_out(schedule_id: int, place: Place) -> room_shapes.RoomPlace:
    return room_shapes.RoomPlace(
        schedule_id=str(schedule_id),
        status=place.standing.value,
        position=place.position,
        arrival=place.arrival or None,
        waiting=place.waiting,
        opens_at=place.config.opens_at,
        closes_at=place.config.closes_at,
        estimated_wait_seconds=place.estimated_wait_seconds,
        abandon_seconds=place.config.abandon_seconds,
        position_token=place.position_token,
        admission_token=place.admission_token,
        admission_expires_at=place.admission_expires_at,
    )


_ROOM_PATH: Final = "/v1/schedules/{schedule_id}/waiting-room"
_ADMIN_PATH: Final = "/v1/admin/schedules/{schedule_id}/waiting-room"
_PLACE_ERRORS: Final = (Code.SCHEDULE_NOT_FOUND, Code.WAITING_ROOM_NOT_FOUND, *AUTH)

ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "POST",
        _ROOM_PATH,
        join,
        "joinWaitingRoom",
        {
            "tags": ["waiting room"],
            "summary": "Join the schedule's waiting room (idempotent) and see where you stand.",
            "description": (
                "Before the opening, arrivals are shuffled fairly at random; after it they "
                "queue first come, first served. Joining again keeps the place."
            ),
            "requestBody": EMPTY_BODY,
            "responses": {
                **ok(200, "The patient's place", room_shapes.RoomPlace),
                **errors(*BODY, *_PLACE_ERRORS),
            },
        },
        access=Access.PATIENT,
    ),
    Route(
        "GET",
        _ROOM_PATH,
        stand,
        "getWaitingRoomPlace",
        {
            "tags": ["waiting room"],
            "summary": "Position and estimated wait; the admission token once admitted.",
            "description": (
                "Asking keeps the place: one not asked about for the room's abandon_seconds "
                "is given up, and the patients behind move up."
            ),
            "parameters": [_TOKEN_PARAMETER],
            "responses": {
                **ok(200, "The patient's place", room_shapes.RoomPlace),
                **errors(*_PLACE_ERRORS, Code.ROOM_TOKEN_INVALID),
            },
        },
        access=Access.PATIENT,
    ),
    Route(
        "PUT",
        _ADMIN_PATH,
        put_room,
        "putWaitingRoom",
        {
            "tags": ["waiting room"],
            "summary": "Open a waiting room for the schedule's opening, or change its settings.",
            "description": (
                "While it is open, booking the schedule needs an admission token. Changing "
                "the settings keeps the queue and what was admitted."
            ),
            "requestBody": json_body(room_shapes.WaitingRoomIn),
            "responses": {
                **ok(200, "The room", room_shapes.WaitingRoom),
                **errors(*BODY, Code.SCHEDULE_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "GET",
        _ADMIN_PATH,
        get_room,
        "getWaitingRoom",
        {
            "tags": ["waiting room"],
            "summary": "The room's settings and counts.",
            "responses": {
                **ok(200, "The room", room_shapes.WaitingRoom),
                **errors(Code.SCHEDULE_NOT_FOUND, Code.WAITING_ROOM_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "DELETE",
        _ADMIN_PATH,
        delete_room,
        "deleteWaitingRoom",
        {
            "tags": ["waiting room"],
            "summary": "Close the room now: booking needs no admission token any more.",
            "responses": {
                **ok(204, "Closed", None),
                **errors(Code.SCHEDULE_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
