"""HIS sync (API.md 1.1, Management): the schedule feed a hospital information system sends,
and what the sync answers.

A row's JSON types are checked with the body (a string where a number belongs is 400, as
is a field no row has); its values (ids, dates, periods, ranges, what it names) are checked
row by row, and a bad one is that row's error in the answer, not the request's.
"""

from __future__ import annotations

from typing import Annotated, Final

from msgspec import UNSET, Meta, UnsetType

from core.his_sync.plan import Action
from server.shapes import MAX_BATCH, Serial, Shape

CSV_CONTENT_TYPE: Final = "text/csv"

_ROW_VALUE: Final = "Checked per row: a bad value is this row's error, not the request's."


class HisFeedRow(Shape):
    """One session of the hospital's schedule, keyed by the HIS's own id."""

    external_id: Annotated[str, Meta(description="1..64 of [A-Za-z0-9._-]. " + _ROW_VALUE)]
    department_id: Annotated[str, Meta(description="An existing department. " + _ROW_VALUE)]
    doctor_id: Annotated[str, Meta(description="An existing doctor. " + _ROW_VALUE)]
    visit_date: Annotated[str, Meta(description="YYYY-MM-DD. " + _ROW_VALUE)]
    period: Annotated[str, Meta(description="am, pm or night. " + _ROW_VALUE)]
    capacity: Annotated[int, Meta(description="1..100000. " + _ROW_VALUE)]
    fee_cents: Annotated[int, Meta(description=">= 0, default 0. " + _ROW_VALUE)] = 0
    opens_at: (
        Annotated[
            str,
            Meta(
                description=(
                    "RFC 3339. Absent: a new session opens when created, an existing one "
                    "keeps its opening time. " + _ROW_VALUE
                )
            ),
        ]
        | UnsetType
    ) = UNSET


class HisFeed(Shape):
    """The hospital's whole schedule: a live session it does not name, from the hospital's
    today on, is suspended."""

    schedules: Annotated[list[HisFeedRow], Meta(max_length=MAX_BATCH)]


class HisSyncQuery(Shape):
    dry_run: Annotated[
        bool, Meta(description="true: answer what would change, change nothing.")
    ] = False


class HisChange(Shape):
    field: Annotated[str, Meta(description="capacity, fee_cents or opens_at.")]
    before: int | str | None
    after: int | str | None


class HisRow(Shape):
    """One row of the per-row diff: a row that changes something, is refused, or a session
    suspended because the feed no longer names it (`line` null)."""

    action: Annotated[Action, Meta(description="What the row does; unchanged rows are not listed.")]
    line: Annotated[
        int | None,
        Meta(description="The row's place in `schedules` (1-based), or its line in the CSV."),
    ]
    external_id: str | None
    schedule_id: Serial | None
    changes: list[HisChange]
    code: Annotated[
        str | None,
        Meta(
            description=(
                "conflict: capacity_below_held or schedule_moved; error: invalid_request, "
                "department_not_found or doctor_not_found."
            )
        ),
    ]
    reason: str | None


class HisSyncReport(Shape):
    """Counts of sessions; `conflicts` and `errors` count rows not applied."""

    dry_run: bool
    created: int
    updated: int
    suspended: int
    unchanged: int
    conflicts: int
    errors: int
    rows: list[HisRow]
