"""Analytics: a hospital's booking outcomes per age band, department, weekday or lead time.

The handler checks who may read the hospital in its first two lines.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from core import analytics
from core.domain import Code
from server import auth
from server import validation as parse
from server.appkeys import STORES
from server.encoding import analytics_out, json_response
from server.openapi import ADMIN, errors, ok, query_parameters
from server.route import Access, Route
from server.shapes import analytics as shapes


async def get_analytics(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    group_by, first_visit, last_visit = parse.analytics_query(request.query)
    groups = await analytics.outcomes(
        request.app[STORES].pg, hospital_id, group_by, first_visit, last_visit
    )
    return json_response(analytics_out(hospital_id, group_by, first_visit, last_visit, groups))


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "GET",
        "/v1/admin/hospitals/{hospital_id}/analytics",
        get_analytics,
        "getAnalytics",
        {
            "tags": ["admin"],
            "summary": "Booking outcomes and their rates per group, for visits in a date range.",
            "description": (
                "Groups with at least one booking, in order (bands and weekdays in order with "
                "`unknown` last, departments by id). Age is the patient's at the visit, from "
                "their profile; lead time is the visit date minus the booking's date."
            ),
            "parameters": query_parameters(shapes.AnalyticsQuery),
            "responses": {
                **ok(200, "The groups", shapes.Analytics),
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
