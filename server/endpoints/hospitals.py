"""Hospitals, departments and doctors as resources of administrators (API.md 1.1,
Management): PUT creates or replaces, GET reads, DELETE deletes unless bookings hold numbers
of it from today on (`in_use`). A hospital's administrator manages its own hospital's, but
only the platform deletes a hospital. The service is core.hospitals.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from core.domain import Code
from server import auth
from server import validation as parse
from server.appkeys import HOSPITALS
from server.caching import Caching, cached_json
from server.encoding import department_out, doctor_out, hospital_out, json_response
from server.openapi import ADMIN, BODY, IF_NONE_MATCH, errors, json_body, ok, ok_cached
from server.route import Access, Route
from server.shapes import hospitals as hospital_shapes

HOSPITAL_PATH: Final = "/v1/admin/hospitals/{hospital_id}"
DEPARTMENT_PATH: Final = HOSPITAL_PATH + "/departments/{department_id}"
DOCTOR_PATH: Final = HOSPITAL_PATH + "/doctors/{doctor_id}"


def _id(request: web.Request, name: str) -> str:
    return parse.entity_id(request.match_info[name], name)


async def put_hospital(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    hospital = parse.hospital_in(await request.read(), hospital_id)
    return json_response(hospital_out(await request.app[HOSPITALS].put_hospital(hospital)))


async def get_hospital(request: web.Request) -> web.Response:
    hospital = await request.app[HOSPITALS].hospital(auth.staff_hospital(request))
    return cached_json(request, hospital_out(hospital), Caching.PERSONAL)


async def delete_hospital(request: web.Request) -> web.Response:
    auth.platform(request)
    await request.app[HOSPITALS].delete_hospital(_id(request, "hospital_id"))
    return web.Response(status=204)


async def put_department(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    department = parse.department_in(
        await request.read(), hospital_id, _id(request, "department_id")
    )
    stored = await request.app[HOSPITALS].put_department(department)
    return json_response(department_out(stored))


async def get_department(request: web.Request) -> web.Response:
    department = await request.app[HOSPITALS].department(
        auth.staff_hospital(request), _id(request, "department_id")
    )
    return cached_json(request, department_out(department), Caching.PERSONAL)


async def delete_department(request: web.Request) -> web.Response:
    await request.app[HOSPITALS].delete_department(
        auth.staff_hospital(request), _id(request, "department_id")
    )
    return web.Response(status=204)


async def put_doctor(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    doctor = parse.doctor_in(await request.read(), hospital_id, _id(request, "doctor_id"))
    return json_response(doctor_out(await request.app[HOSPITALS].put_doctor(doctor)))


async def get_doctor(request: web.Request) -> web.Response:
    doctor = await request.app[HOSPITALS].doctor(
        auth.staff_hospital(request), _id(request, "doctor_id")
    )
    return cached_json(request, doctor_out(doctor), Caching.PERSONAL)


async def delete_doctor(request: web.Request) -> web.Response:
    await request.app[HOSPITALS].delete_doctor(
        auth.staff_hospital(request), _id(request, "doctor_id")
    )
    return web.Response(status=204)


def _resource(
    path: str,
    noun: str,
    handlers: tuple[Handler, Handler, Handler],
    shape_in: Any,
    shape_out: Any,
    *,
    missing: tuple[Code, ...],
    put_missing: tuple[Code, ...],
    delete_access: Access = Access.STAFF,
) -> tuple[Route, Route, Route]:
    """PUT, GET and DELETE of one resource, for the platform and the hospital's own
    administrator (DELETE: `delete_access`). `missing`: the 404s of its path;
    `put_missing`: those a PUT can meet (a parent, or what its body names)."""
    put, get, delete = handlers
    name = noun.capitalize()
    tags = ["admin"]
    return (
        Route(
            "PUT",
            path,
            put,
            f"put{name}",
            {
                "tags": tags,
                "summary": f"Create or replace a {noun}; omitted optional fields take defaults.",
                "requestBody": json_body(shape_in),
                "responses": {
                    **ok(200, f"The {noun}", shape_out),
                    **errors(*BODY, *put_missing, *ADMIN),
                },
            },
            access=Access.STAFF,
        ),
        Route(
            "GET",
            path,
            get,
            f"get{name}",
            {
                "tags": tags,
                "summary": f"One {noun}.",
                "parameters": [IF_NONE_MATCH],
                "responses": {
                    **ok_cached(f"The {noun}", shape_out),
                    **errors(Code.INVALID_REQUEST, *missing, *ADMIN),
                },
            },
            access=Access.STAFF,
        ),
        Route(
            "DELETE",
            path,
            delete,
            f"delete{name}",
            {
                "tags": tags,
                "summary": (
                    f"Delete a {noun} (soft: what names it keeps it); its schedules close. "
                    "Refused while bookings hold numbers of it from today on."
                ),
                "responses": {
                    **ok(204, "Deleted", None),
                    **errors(Code.INVALID_REQUEST, *missing, Code.IN_USE, *ADMIN),
                },
            },
            access=delete_access,
        ),
    )


ROUTES: Final[tuple[Route, ...]] = (
    *_resource(
        HOSPITAL_PATH,
        "hospital",
        (put_hospital, get_hospital, delete_hospital),
        hospital_shapes.HospitalIn,
        hospital_shapes.Hospital,
        missing=(Code.HOSPITAL_NOT_FOUND,),
        put_missing=(),
        # Taking a hospital off the platform is the platform's decision.
        delete_access=Access.PLATFORM,
    ),
    *_resource(
        DEPARTMENT_PATH,
        "department",
        (put_department, get_department, delete_department),
        hospital_shapes.DepartmentIn,
        hospital_shapes.Department,
        missing=(Code.HOSPITAL_NOT_FOUND, Code.DEPARTMENT_NOT_FOUND),
        put_missing=(Code.HOSPITAL_NOT_FOUND,),
    ),
    *_resource(
        DOCTOR_PATH,
        "doctor",
        (put_doctor, get_doctor, delete_doctor),
        hospital_shapes.DoctorIn,
        hospital_shapes.Doctor,
        missing=(Code.HOSPITAL_NOT_FOUND, Code.DOCTOR_NOT_FOUND),
        put_missing=(Code.HOSPITAL_NOT_FOUND, Code.DEPARTMENT_NOT_FOUND),
    ),
)
