"""The staff console's live stream (issue 14): a hospital's sessions and holds pushed as
Server-Sent Events whenever they change, instead of polled.

Polling cost the server one whole HTTP request per console and second, about what a
booking costs it (bench.consoles: 50 polling consoles took 0.045 cores of the server
process). A stream follows its hospital's feed (server/live_feeds.py): one reader per
hospital and span reads the shared snapshots the polls use too, and a stream wakes only to
write what changed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from aiohttp import hdrs, web
from multidict import MultiDict

from core.domain import Code
from server import auth, shapes
from server import validation as parse
from server.appkeys import LIVE, SETTINGS
from server.endpoints.patients import schedules_snapshot
from server.endpoints.records import records_snapshot
from server.live_feeds import PROBLEM, Inbox, Read
from server.openapi import ADMIN, errors, query_parameters
from server.route import Access, Route
from server.shapes.live import LiveQuery
from server.snapshots import Snapshot

# The holds are looked at every few reads of the feed (the sessions at every read: their
# `remaining` may lag a second anyway).
_HOLDS_SECONDS: Final = 5
# A comment line now and then while nothing changes, so that proxies keep the connection.
_HEARTBEAT_SECONDS: Final = 15.0
# The stream ends this long before the admin routes' request deadline would cut it.
_DEADLINE_MARGIN_SECONDS: Final = 2.0
_PAGE: Final = "500"
EVENT_STREAM: Final = "text/event-stream"
_EVENT_SCHEMA: Final = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["schedules", "holds", "end", "problem"]},
        "data": {"type": "string", "description": "One JSON object, as the table says."},
    },
}


async def live(request: web.Request) -> web.StreamResponse:
    hospital_id = auth.staff_hospital(request)
    query = parse.query(request.query, LiveQuery)
    deadline = request.app[SETTINGS].admin_request_timeout - _DEADLINE_MARGIN_SECONDS
    ends = time.monotonic() + max(1.0, min(float(query.seconds), deadline))
    feeds = request.app[LIVE]
    response = web.StreamResponse(
        headers={hdrs.CONTENT_TYPE: EVENT_STREAM, hdrs.CACHE_CONTROL: "no-store"}
    )
    await response.prepare(request)
    key = (hospital_id, query.visit_from, query.visit_to)
    with feeds.follow(key, _reader(request.app, hospital_id, query)) as inbox:
        try:
            while not feeds.stopping and (left := ends - time.monotonic()) > 0:
                chunk = await _next(inbox, min(left, _HEARTBEAT_SECONDS))
                await response.write(chunk or b": nothing changed\n\n")
                if PROBLEM in chunk:
                    # Past its headers a stream cannot become a problem answer: it says so
                    # and ends, and the console opens it again a little later.
                    return await _end(response, b"")
        except ConnectionResetError:
            return response
    return await _end(response, b"event: end\ndata: {}\n\n")


def _reader(app: web.Application, hospital_id: str, query: LiveQuery) -> Read:
    """The feed's pages: the sessions every read, the holds every few."""
    span = {"from": query.visit_from.isoformat(), "to": query.visit_to.isoformat(), "limit": _PAGE}
    sessions = parse.query(MultiDict(hospital_id=hospital_id, **span), shapes.ScheduleFilters)
    holds = MultiDict(status="pending_payment", **span)
    holds_due = 0.0

    async def read() -> dict[str, bytes]:
        nonlocal holds_due
        events = {
            "schedules": _event("schedules", await schedules_snapshot(app, sessions, hospital_id))
        }
        if time.monotonic() >= holds_due:
            holds_due = time.monotonic() + _HOLDS_SECONDS
            page = await records_snapshot(app, holds, hospital_id, _HOLDS_SECONDS)
            events["holds"] = _event("holds", page)
        return events

    return read


def _event(name: str, snapshot: Snapshot) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), snapshot.body)


async def _next(inbox: Inbox, seconds: float) -> bytes:
    """What the feed delivered within `seconds`, or b"" if nothing did."""
    try:
        async with asyncio.timeout(seconds):
            await inbox.ready.wait()
    except TimeoutError:
        return b""
    return inbox.take()


async def _end(response: web.StreamResponse, last: bytes) -> web.StreamResponse:
    try:
        if last:
            await response.write(last)
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "GET",
        "/v1/admin/hospitals/{hospital_id}/live",
        live,
        "streamHospitalLive",
        {
            "tags": ["admin"],
            "summary": "The hospital's sessions and holds, pushed as Server-Sent Events.",
            "description": (
                "An `event: schedules` carries the page `GET /v1/schedules?hospital_id=H&"
                "from=&to=&limit=500` would answer, sent first and then whenever it changes "
                "(checked every second); an `event: holds` the page of `GET /v1/admin/"
                "hospitals/{h}/bookings?status=pending_payment&from=&to=&limit=500` "
                "(checked every 5 s). A comment line comes every 15 s while nothing changes. "
                "The stream ends with `event: end` after `seconds`, before the admin request "
                "deadline, or when the server stops; with `event: problem` ({code}) if a store "
                "fails. Reconnect when it ends."
            ),
            "parameters": query_parameters(LiveQuery),
            "responses": {
                "200": {
                    "description": "The event stream",
                    # Each event, as an SSE parser hands it over.
                    "content": {EVENT_STREAM: {"schema": _EVENT_SCHEMA}},
                },
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
