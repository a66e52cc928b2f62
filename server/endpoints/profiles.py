"""Patients: the profile a patient keeps (birth date, sex), and a hospital's tags of its
patients.

Tags belong to one hospital (API.md invariant 11), named by `?hospital_id=`; each tags
handler decides which hospital it acts for in its first two lines.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from aiohttp import web

from core import profiles
from core.domain import Code
from server import auth
from server import validation as parse
from server.appkeys import STORES
from server.encoding import json_response, profile_out, tags_out
from server.openapi import ADMIN, AUTH, BODY, errors, json_body, ok, query_parameters
from server.route import Access, Route
from server.shapes import profiles as shapes


async def put_profile(request: web.Request) -> web.Response:
    patient_id = await auth.patient(request)
    birth_date, sex = parse.profile_in(await request.read(), dt.datetime.now(dt.UTC))
    stored = await profiles.put_profile(request.app[STORES].pg, patient_id, birth_date, sex)
    return json_response(profile_out(stored))


async def get_profile(request: web.Request) -> web.Response:
    patient_id = await auth.patient(request)
    found = await profiles.get_profile(request.app[STORES].pg, patient_id)
    return json_response(profile_out(found))


async def put_tags(request: web.Request) -> web.Response:
    who = auth.staff(request)
    hospital_id = parse.tags_hospital(request.query)
    auth.confine(who, hospital_id)
    patient_id = parse.entity_id(request.match_info["patient_id"], "patient_id")
    tags = parse.tags_in(await request.read())
    stored = await profiles.put_tags(request.app[STORES].pg, hospital_id, patient_id, tags)
    return json_response(tags_out(stored))


async def get_tags(request: web.Request) -> web.Response:
    who = auth.staff(request)
    hospital_id = parse.tags_hospital(request.query)
    auth.confine(who, hospital_id)
    patient_id = parse.entity_id(request.match_info["patient_id"], "patient_id")
    found = await profiles.get_tags(request.app[STORES].pg, hospital_id, patient_id)
    return json_response(tags_out(found))


_TAGS_QUERY: Final = query_parameters(shapes.TagsQuery)

ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "PUT",
        "/v1/me/profile",
        put_profile,
        "putProfile",
        {
            "tags": ["patients"],
            "summary": "Set the caller's profile (all of it: a sex left out is not stated).",
            "requestBody": json_body(shapes.ProfileIn),
            "responses": {
                **ok(200, "The profile", shapes.Profile),
                **errors(*BODY, *AUTH, Code.FORBIDDEN),
            },
        },
        access=Access.PATIENT,
    ),
    Route(
        "GET",
        "/v1/me/profile",
        get_profile,
        "getProfile",
        {
            "tags": ["patients"],
            "summary": "The caller's profile.",
            "responses": {
                **ok(200, "The profile", shapes.Profile),
                **errors(Code.PROFILE_NOT_FOUND, *AUTH, Code.FORBIDDEN),
            },
        },
        access=Access.PATIENT,
    ),
    Route(
        "PUT",
        "/v1/admin/patients/{patient_id}/tags",
        put_tags,
        "putPatientTags",
        {
            "tags": ["admin"],
            "summary": "Set a hospital's tags of a patient (the whole set; [] removes them).",
            "parameters": _TAGS_QUERY,
            "requestBody": json_body(shapes.TagsIn),
            "responses": {
                **ok(200, "The tags", shapes.PatientTags),
                **errors(*BODY, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
    Route(
        "GET",
        "/v1/admin/patients/{patient_id}/tags",
        get_tags,
        "getPatientTags",
        {
            "tags": ["admin"],
            "summary": "A hospital's tags of a patient; none is an empty list.",
            "parameters": _TAGS_QUERY,
            "responses": {
                **ok(200, "The tags", shapes.PatientTags),
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
