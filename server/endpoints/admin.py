"""Administrators: schedules, a hospital's rules and blacklist, the audit. The platform
administrator reaches every hospital, a hospital's administrator its own only (Access.STAFF).

Hospitals, departments and doctors as resources are in server.endpoints.hospitals.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from core.domain import Code
from server import auth, shapes
from server import validation as parse
from server.appkeys import HIS_SYNC, HOSPITALS, SERVICE
from server.caching import Caching, cached_json
from server.encoding import audit_out, json_response, rules_out, schedule_out
from server.openapi import ADMIN, BODY, IF_NONE_MATCH, errors, json_body, ok, ok_cached
from server.route import Access, Route


async def create_schedules(request: web.Request) -> web.Response:
    who = auth.staff(request)
    # A batch of up to 10,000 schedules is larger than the 64 KiB every other body gets.
    raw = await request.clone(client_max_size=parse.MAX_BATCH_BODY_BYTES).read()
    items = parse.schedules_in(raw)
    # A hospital's administrator creates its own hospital's schedules: every one of a batch.
    auth.confine(who, *{item.hospital_id for item in items})
    upserted = await request.app[HIS_SYNC].upsert(items)
    answer = shapes.ScheduleList(schedules=[schedule_out(v) for v in upserted.views])
    # 201 when the request created a schedule; 200 when every one existed (an upsert).
    return json_response(answer, status=201 if upserted.created else 200)


async def put_rules(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    rules = parse.rules(await request.read())
    stored = await request.app[SERVICE].put_rules(hospital_id, rules)
    return json_response(rules_out(stored))


async def get_rules(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    rules = await request.app[HOSPITALS].rules(hospital_id)
    return cached_json(request, rules_out(rules), Caching.PERSONAL)


async def put_blacklist(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    patient_id = parse.entity_id(request.match_info["patient_id"], "patient_id")
    until = parse.blacklist_until(await request.read())
    await request.app[SERVICE].put_blacklist(hospital_id, patient_id, until)
    return json_response(
        shapes.BlacklistEntry(hospital_id=hospital_id, patient_id=patient_id, until=until)
    )


async def delete_blacklist(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    patient_id = parse.entity_id(request.match_info["patient_id"], "patient_id")
    await request.app[SERVICE].delete_blacklist(hospital_id, patient_id)
    return web.Response(status=204)


async def audit(request: web.Request) -> web.Response:
    # A hospital's administrator audits its own hospital; the platform every hospital.
    who = auth.staff(request)
    audited = await request.app[SERVICE].audit(who.hospital_id)
    return cached_json(request, audit_out(audited), Caching.PERSONAL)


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "POST",
        "/v1/admin/schedules",
        create_schedules,
        "createSchedules",
        {
            "tags": ["admin"],
            "summary": f"Create one schedule or a batch of up to {shapes.MAX_BATCH}.",
            "description": (
                "The only body allowed beyond 64 KiB (up to 8 MiB), for large batches. A "
                "schedule with an external_id that names a live schedule of its hospital "
                "updates that one (capacity, fee, opening time) instead of creating another: "
                "200 when every schedule of the request existed, 201 when one was created. "
                "An update moving a session (department, doctor, date, period) is "
                "schedule_moved, a capacity below a number bookings hold capacity_below_held; "
                "either refuses the whole request."
            ),
            "requestBody": json_body({"oneOf": [shapes.ScheduleIn, shapes.ScheduleBatchIn]}),
            "responses": {
                **ok(201, "Created (at least one)", shapes.ScheduleList),
                **ok(200, "Every one existed: updated or unchanged", shapes.ScheduleList),
                **errors(*BODY, Code.CAPACITY_BELOW_HELD, Code.SCHEDULE_MOVED, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "PUT",
        "/v1/admin/hospitals/{hospital_id}/rules",
        put_rules,
        "putRules",
        {
            "tags": ["admin"],
            "summary": (
                "Set a hospital's rules; omitted fields take their defaults. Creates the "
                "hospital, or brings a deleted one back."
            ),
            "requestBody": json_body(shapes.Rules),
            "responses": {**ok(200, "The rules", shapes.Rules), **errors(*BODY, *ADMIN)},
        },
        access=Access.STAFF,
    ),
    Route(
        "GET",
        "/v1/admin/hospitals/{hospital_id}/rules",
        get_rules,
        "getRules",
        {
            "tags": ["admin"],
            "summary": "A hospital's rules (an extension of v1).",
            "parameters": [IF_NONE_MATCH],
            "responses": {
                **ok_cached("The rules", shapes.Rules),
                **errors(Code.INVALID_REQUEST, Code.HOSPITAL_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "PUT",
        "/v1/admin/hospitals/{hospital_id}/blacklist/{patient_id}",
        put_blacklist,
        "putBlacklist",
        {
            "tags": ["admin"],
            "summary": "Refuse a patient new bookings at a hospital until a time.",
            "requestBody": json_body(shapes.BlacklistIn),
            "responses": {
                **ok(200, "The entry", shapes.BlacklistEntry),
                **errors(*BODY, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "DELETE",
        "/v1/admin/hospitals/{hospital_id}/blacklist/{patient_id}",
        delete_blacklist,
        "deleteBlacklist",
        {
            "tags": ["admin"],
            "summary": "Take a patient off a hospital's blacklist.",
            "responses": {
                **ok(204, "Removed (or was not there)", None),
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "GET",
        "/v1/admin/audit",
        audit,
        "getAudit",
        {
            "tags": ["admin"],
            "summary": "The invariants of API.md, counted in PostgreSQL.",
            "description": "A hospital administrator's audit counts its own hospital only.",
            "parameters": [IF_NONE_MATCH],
            "responses": {**ok_cached("The audit", shapes.Audit), **errors(*ADMIN)},
        },
        access=Access.STAFF,
    ),
)
