"""The handlers and the route table that drives both the router and /openapi.json.

Every handler authenticates first (API.md), with two exceptions in the booking handler: a
schedule remembered as sold out is answered before looking at the request at all, and a full
waiting room (server.admission) answers busy before the token is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from core.domain import Code
from core.errors import SlotrushError
from core.tokens import Principal
from server import validation as parse
from server.appkeys import (
    ADMISSION,
    METRICS_REGISTRY,
    OPENAPI_JSON,
    RATE_LIMITER,
    SERVICE,
    SOLD_OUT,
    VERIFIER,
)
from server.encoding import (
    audit_json,
    booking_json,
    json_response,
    rules_json,
    schedule_json,
)
from server.fastpath import sold_out_response
from server.health import health
from server.metrics import CONTENT_TYPE, render

_CEILING_BODY: Final = b"ok"
IDEMPOTENCY_KEY: Final = "Idempotency-Key"
_CEILING_HEADERS: Final = {hdrs.CONTENT_TYPE: "text/plain"}


# --- authentication -----------------------------------------------------------------------


def _principal(request: web.Request) -> Principal:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        raise SlotrushError(Code.UNAUTHORIZED, "an Authorization: Bearer token is required")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise SlotrushError(Code.UNAUTHORIZED, "the Authorization header must be Bearer <JWT>")
    return request.app[VERIFIER].verify(token)


async def _limit(request: web.Request, patient_id: str | None) -> None:
    limiter = request.app[RATE_LIMITER]
    if not limiter.enabled:
        return
    retry_after = await limiter.retry_after(patient_id=patient_id, address=request.remote)
    if retry_after is not None:
        raise SlotrushError(Code.RATE_LIMITED, retry_after=retry_after)


async def _reader(request: web.Request) -> None:
    """Any valid token: schedules are not any one patient's."""
    await _limit(request, _principal(request).subject)


async def _patient(request: web.Request) -> str:
    """The patient id of a token that names one."""
    principal = _principal(request)
    if principal.subject is None:
        raise SlotrushError(Code.FORBIDDEN, "this admin token names no patient (sub)")
    await _limit(request, principal.subject)
    return principal.subject


def _admin(request: web.Request) -> None:
    if not _principal(request).admin:
        raise SlotrushError(Code.FORBIDDEN, "this endpoint needs an admin token")


async def _empty_body(request: web.Request) -> None:
    if request.body_exists:
        parse.empty_object(await request.read())


# --- patients -----------------------------------------------------------------------------


async def list_schedules(request: web.Request) -> web.Response:
    await _reader(request)
    filters = parse.schedule_filters(request.query)
    views = await request.app[SERVICE].list_schedules(**filters)
    return json_response({"schedules": [schedule_json(v) for v in views]})


async def get_schedule(request: web.Request) -> web.Response:
    await _reader(request)
    schedule_id = parse.path_id(request.match_info["schedule_id"], Code.SCHEDULE_NOT_FOUND)
    return json_response(schedule_json(await request.app[SERVICE].schedule_view(schedule_id)))


async def book(request: web.Request) -> web.Response:
    raw_id = request.match_info["schedule_id"]
    sold_out = request.app[SOLD_OUT]
    # A request with an Idempotency-Key may be the retry of one that booked: it must get its
    # first answer back (API.md), so only key-less requests take the sold-out fast path.
    if IDEMPOTENCY_KEY not in request.headers:
        remembered = sold_out.answer(raw_id)
        if remembered is not None:
            return remembered
    request.app[ADMISSION].refuse_if_full()
    patient_id = await _patient(request)
    schedule_id = parse.path_id(raw_id, Code.SCHEDULE_NOT_FOUND)
    await _empty_body(request)
    key = parse.idempotency_key(request.headers)
    try:
        async with request.app[ADMISSION]:
            outcome = await request.app[SERVICE].book(patient_id, schedule_id, key)
    except SlotrushError as exc:
        if exc.code is not Code.SOLD_OUT:
            raise
        sold_out.remember(raw_id)
        return sold_out_response()
    return json_response({"booking": booking_json(outcome.booking)}, status=201)


async def get_booking(request: web.Request) -> web.Response:
    patient_id = await _patient(request)
    booking_id = parse.path_id(request.match_info["booking_id"], Code.BOOKING_NOT_FOUND)
    booking = await request.app[SERVICE].booking(patient_id, booking_id)
    return json_response({"booking": booking_json(booking)})


async def cancel_booking(request: web.Request) -> web.Response:
    patient_id = await _patient(request)
    booking_id = parse.path_id(request.match_info["booking_id"], Code.BOOKING_NOT_FOUND)
    await _empty_body(request)
    booking = await request.app[SERVICE].cancel(patient_id, booking_id)
    # The number is free again: this process must not answer sold out from memory any more.
    request.app[SOLD_OUT].forget(str(booking.schedule_id))
    return json_response({"booking": booking_json(booking)})


async def my_bookings(request: web.Request) -> web.Response:
    patient_id = await _patient(request)
    bookings = await request.app[SERVICE].patient_bookings(patient_id)
    return json_response({"bookings": [booking_json(b) for b in bookings]})


# --- admin --------------------------------------------------------------------------------


async def create_schedules(request: web.Request) -> web.Response:
    _admin(request)
    # A batch of up to 10,000 schedules is larger than the 64 KiB every other body gets.
    raw = await request.clone(client_max_size=parse.MAX_BATCH_BODY_BYTES).read()
    items = parse.schedules_in(parse.json_object(raw))
    views = await request.app[SERVICE].create_schedules(items)
    return json_response({"schedules": [schedule_json(v) for v in views]}, status=201)


async def put_rules(request: web.Request) -> web.Response:
    _admin(request)
    hospital_id = parse.entity_id(request.match_info["hospital_id"], "hospital_id")
    rules = parse.rules(parse.json_object(await request.read()))
    stored = await request.app[SERVICE].put_rules(hospital_id, rules)
    return json_response(rules_json(stored))


async def put_blacklist(request: web.Request) -> web.Response:
    _admin(request)
    hospital_id = parse.entity_id(request.match_info["hospital_id"], "hospital_id")
    patient_id = parse.entity_id(request.match_info["patient_id"], "patient_id")
    until = parse.blacklist_until(parse.json_object(await request.read()))
    await request.app[SERVICE].put_blacklist(hospital_id, patient_id, until)
    return json_response({"hospital_id": hospital_id, "patient_id": patient_id, "until": until})


async def delete_blacklist(request: web.Request) -> web.Response:
    _admin(request)
    hospital_id = parse.entity_id(request.match_info["hospital_id"], "hospital_id")
    patient_id = parse.entity_id(request.match_info["patient_id"], "patient_id")
    await request.app[SERVICE].delete_blacklist(hospital_id, patient_id)
    return web.Response(status=204)


async def audit(request: web.Request) -> web.Response:
    _admin(request)
    return json_response(audit_json(await request.app[SERVICE].audit()))


# --- operations ---------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return await health(request.app)


async def metrics(request: web.Request) -> web.Response:
    body = render(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[OPENAPI_JSON], headers={hdrs.CONTENT_TYPE: "application/json"}
    )


async def ceiling(request: web.Request) -> web.Response:
    """A constant answer with no I/O: the most the server can do, for benchmarks."""
    return web.Response(body=_CEILING_BODY, headers=_CEILING_HEADERS)


# --- the route table ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    # The OpenAPI operationId and the route label of the HTTP metrics.
    name: str


ROUTES: Final[tuple[Route, ...]] = (
    # The hottest route first: the router tries routes sharing a prefix in this order.
    Route("POST", "/v1/schedules/{schedule_id}/bookings", book, "book"),
    Route("GET", "/v1/schedules", list_schedules, "listSchedules"),
    Route("GET", "/v1/schedules/{schedule_id}", get_schedule, "getSchedule"),
    Route("GET", "/v1/bookings/{booking_id}", get_booking, "getBooking"),
    Route("POST", "/v1/bookings/{booking_id}/cancel", cancel_booking, "cancelBooking"),
    Route("GET", "/v1/me/bookings", my_bookings, "listMyBookings"),
    Route("POST", "/v1/admin/schedules", create_schedules, "createSchedules"),
    Route("PUT", "/v1/admin/hospitals/{hospital_id}/rules", put_rules, "putRules"),
    Route(
        "PUT",
        "/v1/admin/hospitals/{hospital_id}/blacklist/{patient_id}",
        put_blacklist,
        "putBlacklist",
    ),
    Route(
        "DELETE",
        "/v1/admin/hospitals/{hospital_id}/blacklist/{patient_id}",
        delete_blacklist,
        "deleteBlacklist",
    ),
    Route("GET", "/v1/admin/audit", audit, "getAudit"),
    Route("GET", "/healthz", healthz, "healthz"),
    Route("GET", "/metrics", metrics, "metrics"),
    Route("GET", "/openapi.json", openapi, "openapi"),
    Route("GET", "/ceiling", ceiling, "ceiling"),
)
