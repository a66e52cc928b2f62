"""A hospital's automatic blacklisting (API.md 1.1, Hospital operations): its rules, the
blacklist with the events behind each automatic entry, and the whitelist. The platform or
the hospital's own administrator (Access.STAFF); the service is core.blacklisting.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import msgspec
from aiohttp import web

from core import blacklisting
from core.blacklisting import BlacklistEntry, BlacklistRules
from core.domain import Code
from server import auth
from server import validation as parse
from server.appkeys import HOSPITALS, STORES
from server.caching import Caching, cached_json
from server.cursors import page_request
from server.encoding import json_response
from server.openapi import (
    ADMIN,
    BODY,
    IF_NONE_MATCH,
    errors,
    json_body,
    ok,
    ok_cached,
    query_parameters,
)
from server.route import Access, Route
from server.shapes import PageQuery
from server.shapes import blacklisting as shapes

_RULES: Final = msgspec.json.Decoder(shapes.BlacklistRules)
HOSPITAL_PATH: Final = "/v1/admin/hospitals/{hospital_id}"
WHITELIST_PATH: Final = HOSPITAL_PATH + "/whitelist/{patient_id}"


async def _known_hospital(request: web.Request) -> str:
    """The path's hospital, once the caller may administer it and it exists."""
    hospital_id = auth.staff_hospital(request)
    await request.app[HOSPITALS].hospital(hospital_id)
    return hospital_id


async def put_rules(request: web.Request) -> web.Response:
    hospital_id = await _known_hospital(request)
    shape = parse.decode(await request.read(), _RULES)
    rules = BlacklistRules(**msgspec.structs.asdict(shape))
    await blacklisting.put_rules(request.app[STORES].pg, hospital_id, rules)
    return json_response(shape)


async def get_rules(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    rules = await blacklisting.rules(request.app[STORES].pg, hospital_id)
    return cached_json(
        request, shapes.BlacklistRules(**dataclasses.asdict(rules)), Caching.PERSONAL
    )


async def delete_rules(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    await blacklisting.delete_rules(request.app[STORES].pg, hospital_id)
    return web.Response(status=204)


async def list_blacklist(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    paging = page_request("listBlacklist", parse.query(request.query, PageQuery), str)
    page = await blacklisting.blacklist_page(
        request.app[STORES].pg, hospital_id, after=paging.after, limit=paging.limit
    )
    answer = shapes.BlacklistPage(
        entries=[_entry_out(hospital_id, entry) for entry in page.items],
        next_cursor=paging.next_cursor(page),
    )
    return cached_json(request, answer, Caching.PERSONAL)


def _entry_out(hospital_id: str, entry: BlacklistEntry) -> shapes.BlacklistListed:
    return shapes.BlacklistListed(
        hospital_id=hospital_id,
        patient_id=entry.patient_id,
        until=entry.until,
        source=entry.source,  # type: ignore[arg-type]
        since=entry.since,
        events=[
            shapes.BreachEvent(
                booking_id=str(e.booking_id),
                kind=e.kind,  # type: ignore[arg-type]
                weight=e.weight,
                occurred_at=e.occurred_at,
            )
            for e in entry.events
        ],
    )


def _patient_id(request: web.Request) -> str:
    return parse.entity_id(request.match_info["patient_id"], "patient_id")


async def put_whitelist(request: web.Request) -> web.Response:
    hospital_id = await _known_hospital(request)
    patient_id = _patient_id(request)
    since = await blacklisting.whitelist(request.app[STORES].pg, hospital_id, patient_id)
    return json_response(
        shapes.WhitelistEntry(hospital_id=hospital_id, patient_id=patient_id, since=since)
    )


async def delete_whitelist(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    await blacklisting.unwhitelist(request.app[STORES].pg, hospital_id, _patient_id(request))
    return web.Response(status=204)


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "PUT",
        HOSPITAL_PATH + "/blacklist-rules",
        put_rules,
        "putBlacklistRules",
        {
            "tags": ["admin"],
            "summary": "Set a hospital's automatic blacklisting rules.",
            "description": (
                "Reaching max_cancellations (a late cancel counts 2) or max_no_shows within "
                "window_days blacklists the patient at this hospital for ban_days, in the "
                "transaction of the cancel or settlement that crossed it."
            ),
            "requestBody": json_body(shapes.BlacklistRules),
            "responses": {
                **ok(200, "The rules", shapes.BlacklistRules),
                **errors(*BODY, Code.HOSPITAL_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "GET",
        HOSPITAL_PATH + "/blacklist-rules",
        get_rules,
        "getBlacklistRules",
        {
            "tags": ["admin"],
            "summary": "A hospital's automatic blacklisting rules.",
            "parameters": [IF_NONE_MATCH],
            "responses": {
                **ok_cached("The rules", shapes.BlacklistRules),
                **errors(Code.INVALID_REQUEST, Code.BLACKLIST_RULES_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "DELETE",
        HOSPITAL_PATH + "/blacklist-rules",
        delete_rules,
        "deleteBlacklistRules",
        {
            "tags": ["admin"],
            "summary": "Stop blacklisting automatically (entries made stay until they end).",
            "responses": {
                **ok(204, "Removed (or there were none)", None),
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "GET",
        HOSPITAL_PATH + "/blacklist",
        list_blacklist,
        "listBlacklist",
        {
            "tags": ["admin"],
            "summary": "The blacklist entries in force, by patient, with the events behind each.",
            "parameters": [*query_parameters(PageQuery), IF_NONE_MATCH],
            "responses": {
                **ok_cached("A page of entries", shapes.BlacklistPage),
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "PUT",
        WHITELIST_PATH,
        put_whitelist,
        "putWhitelist",
        {
            "tags": ["admin"],
            "summary": "Never blacklist this patient automatically at this hospital.",
            "description": "No body is read. Entries already made stay until they end.",
            "responses": {
                **ok(200, "The entry", shapes.WhitelistEntry),
                **errors(Code.INVALID_REQUEST, Code.HOSPITAL_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "DELETE",
        WHITELIST_PATH,
        delete_whitelist,
        "deleteWhitelist",
        {
            "tags": ["admin"],
            "summary": "Take a patient off a hospital's whitelist.",
            "responses": {
                **ok(204, "Removed (or was not there)", None),
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
