"""Records: a hospital's bookings, filtered, a page at a time, or every row as CSV.

`Accept: text/csv` streams every matching row from one snapshot in constant memory
(server.csv_export); `limit` and `cursor` page the JSON answer only. Each handler checks who
may read the hospital in its first two lines.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Final

from aiohttp import web

from core import records
from core.domain import Code
from server import auth, csv_export
from server import validation as parse
from server.appkeys import STORES
from server.caching import Caching, cached_json
from server.encoding import record_out
from server.openapi import ADMIN, IF_NONE_MATCH, errors, ok_cached, query_parameters
from server.route import Access, Route
from server.shapes import records as shapes

_PAGING: Final = ("limit", "cursor")


async def list_bookings(request: web.Request) -> web.StreamResponse:
    hospital_id = auth.staff_hospital(request)
    where, after, limit = parse.records_query(request.query, hospital_id)
    pool = request.app[STORES].pg
    if csv_export.wants_csv(request):
        if any(name in request.query for name in _PAGING):
            raise parse.invalid("limit and cursor page JSON; text/csv is every matching row")
        async with aclosing(records.batches(pool, where)) as batches:
            return await csv_export.stream(
                request, f"bookings-{hospital_id}.csv", shapes.BookingRecord, batches, record_out
            )
    page = await records.page(pool, where, after, limit)
    following = page.next_position
    # Conditional (API.md: every list GET has an ETag): the staff console polls the holds.
    return cached_json(
        request,
        shapes.BookingRecords(
            bookings=[record_out(r) for r in page.records],
            next_cursor=following.cursor() if following is not None else None,
        ),
        Caching.PERSONAL,
    )


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "GET",
        "/v1/admin/hospitals/{hospital_id}/bookings",
        list_bookings,
        "listHospitalBookings",
        {
            "tags": ["admin"],
            "summary": "A hospital's bookings by visit date, a page at a time, or all as CSV.",
            "description": (
                "With `Accept: text/csv`, every matching row is streamed as CSV (RFC 4180, a "
                "header line, the columns of BookingRecord; a cell starting with = + - @ gets "
                "a leading apostrophe) from one snapshot; `limit` and `cursor` are refused "
                "there. A failure after the first row cuts the connection."
            ),
            "parameters": [*query_parameters(shapes.RecordQuery), IF_NONE_MATCH],
            "responses": {
                "200": {
                    "description": "A page (JSON) or every row (CSV)",
                    "content": {
                        "application/json": {"schema": shapes.BookingRecords},
                        csv_export.CSV_CONTENT_TYPE: {"schema": {"type": "string"}},
                    },
                    "headers": ok_cached("", None)["200"]["headers"],
                },
                "304": {"description": "Not modified: If-None-Match named the current ETag."},
                **errors(Code.INVALID_REQUEST, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
