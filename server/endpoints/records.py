"""Records: a hospital's bookings, filtered, a page at a time, or every row as CSV.

`Accept: text/csv` streams every matching row from one snapshot in constant memory
(server.csv_export); `limit` and `cursor` page the JSON answer only. Each handler checks who
may read the hospital in its first two lines.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Final

from aiohttp import web
from multidict import MultiMapping

from core import records
from core.domain import Code
from server import auth, csv_export
from server import validation as parse
from server.appkeys import SNAPSHOTS, STORES
from server.caching import Caching, accepted_age, encoded_json
from server.encoding import record_out
from server.openapi import ADMIN, IF_NONE_MATCH, errors, ok_cached, query_parameters
from server.route import Access, Route
from server.shapes import records as shapes
from server.snapshots import Snapshot

_PAGING: Final = ("limit", "cursor")


async def list_bookings(request: web.Request) -> web.StreamResponse:
    hospital_id = auth.staff_hospital(request)
    if csv_export.wants_csv(request):
        where, _, _ = parse.records_query(request.query, hospital_id)
        if any(name in request.query for name in _PAGING):
            raise parse.invalid("limit and cursor page JSON; text/csv is every matching row")
        async with aclosing(records.batches(request.app[STORES].pg, where)) as batches:
            return await csv_export.stream(
                request, f"bookings-{hospital_id}.csv", shapes.BookingRecord, batches, record_out
            )

    # Fresh unless the request accepts an older page (`Cache-Control: max-age=N`): the staff
    # console's holds poll does, and all a hospital's consoles then share one read.
    snapshot = await records_snapshot(
        request.app, request.query, hospital_id, accepted_age(request)
    )
    # Conditional (API.md: every list GET has an ETag).
    return encoded_json(request, snapshot.body, snapshot.etag, Caching.PERSONAL)


async def records_snapshot(
    app: web.Application, query: MultiMapping[str], hospital_id: str, max_age: float
) -> Snapshot:
    """The page of `hospital_id`'s records `query` asks for, read at most `max_age` ago."""
    where, after, limit = parse.records_query(query, hospital_id)

    async def read() -> shapes.BookingRecords:
        page = await records.page(app[STORES].pg, where, after, limit)
        following = page.next_position
        return shapes.BookingRecords(
            bookings=[record_out(r) for r in page.records],
            next_cursor=following.cursor() if following is not None else None,
        )

    key = ("records", hospital_id, tuple(sorted(query.items())))
    return await app[SNAPSHOTS].get(key, read, max_age=max_age)


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
