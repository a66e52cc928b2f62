"""The platform administrator: schedules, a hospital's rules and blacklist, the audit.

Hospitals, departments and doctors as resources are in server.endpoints.hospitals.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from core.domain import Code
from server import auth, shapes
from server import validation as parse
from server.appkeys import HOSPITALS, SERVICE
from server.encoding import audit_out, json_response, rules_out, schedule_out
from server.openapi import ADMIN, BODY, errors, json_body, ok
from server.route import Route


async def create_schedules(request: web.Request) -> web.Response:
    auth.admin(request)
    # A batch of up to 10,000 schedules is larger than the 64 KiB every other body gets.
    raw = await request.clone(client_max_size=parse.MAX_BATCH_BODY_BYTES).read()
    views = await request.app[SERVICE].create_schedules(parse.schedules_in(raw))
    created = shapes.ScheduleList(schedules=[schedule_out(v) for v in views])
    return json_response(created, status=201)


async def put_rules(request: web.Request) -> web.Response:
    auth.admin(request)
    hospital_id = parse.entity_id(request.match_info["hospital_id"], "hospital_id")
    rules = parse.rules(await request.read())
    stored = await request.app[SERVICE].put_rules(hospital_id, rules)
    return json_response(rules_out(stored))


async def get_rules(request: web.Request) -> web.Response:
    auth.admin(request)
    hospital_id = parse.entity_id(request.match_info["hospital_id"], "hospital_id")
    return json_response(rules_out(await request.app[HOSPITALS].rules(hospital_id)))


async def put_blacklist(request: web.Request) -> web.Response:
    auth.admin(request)
    hospital_id = parse.entity_id(request.match_info["hospital_id"], "hospital_id")
    patient_id = parse.entity_id(request.match_info["patient_id"], "patient_id")
    until = parse.blacklist_until(await request.read())
    await request.app[SERVICE].put_blacklist(hospital_id, patient_id, until)
    return json_response(
        shapes.BlacklistEntry(hospital_id=hospital_id, patient_id=patient_id, until=until)
    )


async def delete_blacklist(request: web.Request) -> web.Response:
    auth.admin(request)
    hospital_id = parse.entity_id(request.match_info["hospital_id"], "hospital_id")
    patient_id = parse.entity_id(request.match_info["patient_id"], "patient_id")
    await request.app[SERVICE].delete_blacklist(hospital_id, patient_id)
    return web.Response(status=204)


async def audit(request: web.Request) -> web.Response:
    auth.admin(request)
    return json_response(audit_out(await request.app[SERVICE].audit()))


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "POST",
        "/v1/admin/schedules",
        create_schedules,
        "createSchedules",
        {
            "tags": ["admin"],
            "summary": f"Create one schedule or a batch of up to {shapes.MAX_BATCH}.",
            "description": "The only body allowed beyond 64 KiB (up to 8 MiB), for large batches.",
            "requestBody": json_body({"oneOf": [shapes.ScheduleIn, shapes.ScheduleBatchIn]}),
            "responses": {
                **ok(201, "Created", shapes.ScheduleList),
                **errors(*BODY, *ADMIN),
            },
        },
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
    ),
    Route(
        "GET",
        "/v1/admin/hospitals/{hospital_id}/rules",
        get_rules,
        "getRules",
        {
            "tags": ["admin"],
            "summary": "A hospital's rules (an extension of v1).",
            "responses": {
                **ok(200, "The rules", shapes.Rules),
                **errors(Code.INVALID_REQUEST, Code.HOSPITAL_NOT_FOUND, *ADMIN),
            },
        },
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
    ),
    Route(
        "GET",
        "/v1/admin/audit",
        audit,
        "getAudit",
        {
            "tags": ["admin"],
            "summary": "The invariants of API.md, counted in PostgreSQL.",
            "responses": {**ok(200, "The audit", shapes.Audit), **errors(*ADMIN)},
        },
    ),
)
