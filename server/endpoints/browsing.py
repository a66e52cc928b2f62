"""Public browsing for front ends (API.md 1.1, Management): hospitals, their departments and
their doctors, the facts a front end shows before anyone logs in. No token is needed (one
sent is not looked at), every list is cursor-paginated, and answers may be kept by shared
caches for a few seconds (server.caching). Schedules, with `remaining`, stay behind a token
at GET /v1/schedules.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler
from msgspec import UNSET

from core.domain import Code
from server import validation as parse
from server.appkeys import HOSPITALS
from server.caching import Caching, cached_json
from server.cursors import page_request
from server.encoding import department_out, doctor_out, public_hospital_out
from server.openapi import IF_NONE_MATCH, errors, ok_cached, query_parameters
from server.route import Access, Route
from server.shapes import PageQuery
from server.shapes import browsing as shapes

HOSPITALS_PATH: Final = "/v1/hospitals"
HOSPITAL_PATH: Final = HOSPITALS_PATH + "/{hospital_id}"


def _hospital_id(request: web.Request) -> str:
    return parse.entity_id(request.match_info["hospital_id"], "hospital_id")


async def list_hospitals(request: web.Request) -> web.Response:
    paging = page_request("listHospitals", parse.query(request.query, PageQuery), str)
    page = await request.app[HOSPITALS].hospitals_page(after=paging.after, limit=paging.limit)
    answer = shapes.HospitalPage(
        hospitals=[public_hospital_out(h) for h in page.items],
        next_cursor=paging.next_cursor(page),
    )
    return cached_json(request, answer, Caching.PUBLIC)


async def get_hospital(request: web.Request) -> web.Response:
    hospital = await request.app[HOSPITALS].public_hospital(_hospital_id(request))
    return cached_json(request, public_hospital_out(hospital), Caching.PUBLIC)


async def list_departments(request: web.Request) -> web.Response:
    hospital_id = _hospital_id(request)
    paging = page_request("listDepartments", parse.query(request.query, PageQuery), str)
    page = await request.app[HOSPITALS].departments_page(
        hospital_id, after=paging.after, limit=paging.limit
    )
    answer = shapes.DepartmentPage(
        departments=[department_out(d) for d in page.items],
        next_cursor=paging.next_cursor(page),
    )
    return cached_json(request, answer, Caching.PUBLIC)


async def list_doctors(request: web.Request) -> web.Response:
    hospital_id = _hospital_id(request)
    query = parse.query(request.query, shapes.DoctorQuery)
    paging = page_request("listDoctors", query, str)
    page = await request.app[HOSPITALS].doctors_page(
        hospital_id,
        department_id=None if query.department_id is UNSET else query.department_id,
        after=paging.after,
        limit=paging.limit,
    )
    answer = shapes.DoctorPage(
        doctors=[doctor_out(d) for d in page.items], next_cursor=paging.next_cursor(page)
    )
    return cached_json(request, answer, Caching.PUBLIC)


def _browse(
    path: str, handler: Handler, name: str, summary: str, answer: Any, *, query: Any = None
) -> Route:
    """A public GET answering `answer`; `query`: the shape of its query, if it takes one."""
    parameters = [] if query is None else query_parameters(query)
    missing = () if path == HOSPITALS_PATH else (Code.HOSPITAL_NOT_FOUND,)
    return Route(
        "GET",
        path,
        handler,
        name,
        {
            "tags": ["browsing"],
            "summary": summary,
            "parameters": [*parameters, IF_NONE_MATCH],
            "responses": {
                **ok_cached(summary, answer),
                **errors(Code.INVALID_REQUEST, *missing),
            },
        },
        access=Access.PUBLIC,
    )


ROUTES: Final[tuple[Route, ...]] = (
    _browse(
        HOSPITALS_PATH,
        list_hospitals,
        "listHospitals",
        "The hospitals, one page at a time in id order.",
        shapes.HospitalPage,
        query=PageQuery,
    ),
    _browse(
        HOSPITAL_PATH, get_hospital, "getPublicHospital", "One hospital.", shapes.PublicHospital
    ),
    _browse(
        HOSPITAL_PATH + "/departments",
        list_departments,
        "listDepartments",
        "A hospital's departments, one page at a time in id order.",
        shapes.DepartmentPage,
        query=PageQuery,
    ),
    _browse(
        HOSPITAL_PATH + "/doctors",
        list_doctors,
        "listDoctors",
        "A hospital's doctors (of one department, if given), one page at a time in id order.",
        shapes.DoctorPage,
        query=shapes.DoctorQuery,
    ),
)
