"""HIS sync (API.md 1.1, Management): a hospital's schedule feed, JSON or CSV, applied or
dry-run, by the platform or the hospital's own administrator (Access.STAFF). The service is
core.his_sync.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from core.domain import Code
from server import auth
from server import validation as parse
from server.appkeys import HIS_SYNC, SOLD_OUT
from server.encoding import his_report_out, json_response
from server.openapi import ADMIN, BODY, errors, ok, query_parameters
from server.route import Access, Route
from server.shapes import his_sync as shapes


async def his_sync(request: web.Request) -> web.Response:
    hospital_id = auth.staff_hospital(request)
    dry_run = parse.query(request.query, shapes.HisSyncQuery).dry_run
    # A feed of 10,000 rows is larger than the 64 KiB every other body gets.
    raw = await request.clone(client_max_size=parse.MAX_BATCH_BODY_BYTES).read()
    rows = parse.his_feed(raw, request.content_type)
    report = await request.app[HIS_SYNC].sync(hospital_id, rows, dry_run=dry_run)
    # Suspended or grown schedules: this process must not answer sold out from memory.
    for row in report.rows:
        if row.schedule_id is not None:
            request.app[SOLD_OUT].forget(str(row.schedule_id))
    return json_response(his_report_out(report))


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "POST",
        "/v1/admin/hospitals/{hospital_id}/his-sync",
        his_sync,
        "hisSync",
        {
            "tags": ["admin"],
            "summary": "Make the hospital's schedules what its information system's feed says.",
            "description": (
                "The feed is the hospital's whole schedule, keyed by the HIS's external_id: "
                "a new session is created, a changed one updated (capacity, fee, opening "
                "time), a live one from the hospital's today on that the feed no longer "
                "names is suspended (its bookings cancelled by the hospital). Idempotent. A "
                "capacity below a number bookings hold is a conflict and not applied; a bad "
                "row is reported and skipped. One transaction. Body: JSON, or text/csv with "
                "a header line (columns as HisFeedRow's, empty cells absent); up to 8 MiB."
            ),
            "parameters": query_parameters(shapes.HisSyncQuery),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": shapes.HisFeed},
                    shapes.CSV_CONTENT_TYPE: {"schema": {"type": "string"}},
                },
            },
            "responses": {
                **ok(200, "What changed (or would, on a dry run)", shapes.HisSyncReport),
                **errors(*BODY, Code.HOSPITAL_NOT_FOUND, *ADMIN),
            },
        },
        access=Access.STAFF,
    ),
)
