"""Records: a hospital's bookings as its staff read them, a page at a time or as CSV."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

import msgspec
from msgspec import UNSET, Meta, UnsetType

from core.domain import BookingStatus, Period
from server.shapes import EntityId, FeeCents, Serial, Shape

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 500

# 12 bytes in base64url; any such text is a position, so it is never refused.
Cursor = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_-]{16}\Z",
        description="Opaque: the `next_cursor` of the page before.",
    ),
]
FirstVisit = Annotated[dt.date, Meta(description="Visits on or after this date.")]
LastVisit = Annotated[dt.date, Meta(description="Visits on or before this date.")]


class RecordQuery(Shape):
    """The query of a hospital's bookings; a `from` after `to` matches nothing."""

    first_visit: FirstVisit | UnsetType = msgspec.field(default=UNSET, name="from")
    last_visit: LastVisit | UnsetType = msgspec.field(default=UNSET, name="to")
    department_id: EntityId | UnsetType = UNSET
    doctor_id: EntityId | UnsetType = UNSET
    status: BookingStatus | UnsetType = UNSET
    limit: Annotated[int, Meta(ge=1, le=MAX_LIMIT, description="Rows per page (JSON only).")] = (
        DEFAULT_LIMIT
    )
    cursor: Cursor | UnsetType = UNSET


class BookingRecord(Shape):
    """A booking as the hospital's staff see it (no verification code); also the columns of
    the CSV export, in this order."""

    id: Serial
    hospital_id: EntityId
    schedule_id: Serial
    patient_id: EntityId
    department_id: EntityId
    doctor_id: EntityId
    visit_date: dt.date
    period: Period
    number: Annotated[int, Meta(ge=1)]
    status: BookingStatus
    fee_cents: FeeCents
    created_at: dt.datetime
    cancelled_at: dt.datetime | None


class BookingRecords(Shape):
    """One page, in (visit_date, id) order."""

    bookings: list[BookingRecord]
    next_cursor: Annotated[
        Cursor | None, Meta(description="Where the next page starts; null on the last page.")
    ]
