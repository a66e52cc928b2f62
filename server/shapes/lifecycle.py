"""Hospital operations on the booking lifecycle (API.md 1.1): check-in, day-end settlement
and suspension."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

from msgspec import Meta

from server.shapes import EntityId, Shape

MAX_REASON: Final = 500

VerificationCode = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9]{6,32}\Z",
        description="As the patient shows it; letters in either case.",
    ),
]
Reason = Annotated[str, Meta(min_length=1, max_length=MAX_REASON, pattern=r"^[^\x00-\x1f\x7f]+\Z")]


class CheckInIn(Shape):
    verification_code: VerificationCode


class DayEndIn(Shape):
    date: Annotated[
        dt.date, Meta(description="The visit date to settle: the hospital's today or before.")
    ]


class Settlement(Shape):
    """Day-end settlement of one hospital's visit date (an extension: the counts API.md 1.1
    leaves open). Its counts cover every run of it, so a repeat answers the same."""

    hospital_id: EntityId
    date: dt.date
    started_at: dt.datetime
    finished_at: dt.datetime | None
    no_shows: Annotated[int, Meta(ge=0, description="Bookings it settled as no-shows.")]


class SuspendIn(Shape):
    reason: Reason
