"""The staff console's live stream (issue 14): a hospital's sessions and holds pushed as
Server-Sent Events whenever they change, instead of polled.

Polling cost the server one whole HTTP request per console and second, about what a
booking costs it (bench.consoles: 50 polling consoles took 0.04 cores of the server
process, a rush of 186 bookings/s 0.14). A stream costs a wake-up and, on a change, one
write per console and second. Every stream of a hospital reads the same shared snapshots
as the polls (server/snapshots.py): one ledger read per page and interval, however many
consoles are open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from aiohttp import hdrs, web
from multidict import MultiDict

from core.domain import Code
from core.failures import STORE_UNAVAILABLE
from server import auth, shapes
from server import validation as parse
from server.appkeys import LIVE_STOP, SETTINGS
from server.endpoints.patients import schedules_snapshot
from server.endpoints.records import records_snapshot
from server.openapi import ADMIN, errors, query_parameters
from server.route import Access, Route
from server.shapes.live import LiveQuery
from server.snapshots import Snapshot

log = logging.getLogger("slotrush.server")

# The console's intervals: the sessions every second (their `remaining` may lag a second
# anyway), the holds every five.
_SCHEDULES_SECONDS: Final = 1.0
_HOLDS_SECONDS: Final = 5
# A comment line now and then while nothing changes, so that proxies keep the connection.
_HEARTBEAT_SECONDS: Final = 15.0
# The stream ends this long before the admin routes' request deadline would cut it.
_DEADLINE_MARGIN_SECONDS: Final = 2.0
_PAGE: Final = "500"
EVENT_STREAM: Final = "text/event-stream"


async def live(request: web.Request) -> web.StreamResponse:
    hospital_id = auth.staff_hospital(request)
    query = parse.query(request.query, LiveQuery)
    span = {"from": query.visit_from.isoformat(), "to": query.visit_to.isoformat(), "limit": _PAGE}
    sessions = parse.query(MultiDict(hospital_id=hospital_id, **span), shapes.ScheduleFilters)
    holds = MultiDict(status="pending_payment", **span)
    deadline = request.app[SETTINGS].admin_request_timeout - _DEADLINE_MARGIN_SECONDS
    ends = time.monotonic() + max(1.0, min(float(query.seconds), deadline))
    stop = request.app[LIVE_STOP]
    response = web.StreamResponse(
        headers={hdrs.CONTENT_TYPE: EVENT_STREAM, hdrs.CACHE_CONTROL: "no-store"}
    )
    await response.prepare(request)
    sent: dict[str, str] = {}
    holds_due = written = time.monotonic()
    try:
        while not stop.is_set() and time.monotonic() < ends:
            events = [
                _changed(
                    "schedules", await schedules_snapshot(request.app, sessions, hospital_id), sent
                )
            ]
            if time.monotonic() >= holds_due:
                holds_due += _HOLDS_SECONDS
                page = await records_snapshot(request.app, holds, hospital_id, _HOLDS_SECONDS)
                events.append(_changed("holds", page, sent))
            chunk = b"".join(events)
            if not chunk and time.monotonic() - written >= _HEARTBEAT_SECONDS:
                chunk = b": nothing changed\n\n"
            if chunk:
                await response.write(chunk)
                written = time.monotonic()
            await _rest(stop, _SCHEDULES_SECONDS)
    except ConnectionResetError:
        return response
    except STORE_UNAVAILABLE as exc:
        # Past its headers a stream cannot become a problem answer: it says so and ends,
        # and the console reconnects.
        log.warning("%s %s: store unavailable: %r", request.method, request.path, exc)
        await _try_write(response, b'event: problem\ndata: {"code": "%s"}\n\n' % Code.BUSY.encode())
        return response
    await _try_write(response, b"event: end\ndata: {}\n\n")
    return response


def _changed(name: str, snapshot: Snapshot, sent: dict[str, str]) -> bytes:
    """The event of `snapshot` unless it is the one this stream sent last."""
    if sent.get(name) == snapshot.etag:
        return b""
    sent[name] = snapshot.etag
    return b"event: %s\ndata: %s\n\n" % (name.encode(), snapshot.body)


async def _rest(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if the server is stopping."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


async def _try_write(response: web.StreamResponse, chunk: bytes) -> None:
    try:
        await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        return


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
                    "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
                },
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
