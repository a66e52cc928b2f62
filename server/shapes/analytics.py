"""Analytics: a hospital's booking outcomes counted per group, with their rates."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from core.analytics import SMALL_BELOW, GroupBy
from server.shapes import EntityId, Shape
from server.shapes.records import FirstVisit, LastVisit

Count = Annotated[int, Meta(ge=0)]
Rate = Annotated[float, Meta(ge=0, le=1)] | None


class AnalyticsQuery(Shape):
    group_by: GroupBy
    first_visit: FirstVisit | UnsetType = msgspec.field(default=UNSET, name="from")
    last_visit: LastVisit | UnsetType = msgspec.field(default=UNSET, name="to")


class GroupOutcomes(Shape):
    """One group's bookings and outcomes. Attendance and no-show rates are shares of the
    visits that came due (attended + no_shows); the cancellation rate is a share of all
    bookings."""

    group: Annotated[
        str,
        Meta(
            description=(
                "A department id; mon..sun; an age band (0-17, 18-34, 35-49, 50-64, 65+); a "
                "lead time in days (0d, 1d, 2-6d, 7-13d, 14-29d, 30d+); or unknown (no birth "
                "date on the patient's profile)."
            )
        ),
    ]
    bookings: Count
    attended: Count
    no_shows: Count
    cancellations: Count
    attendance_rate: Rate
    no_show_rate: Rate
    cancellation_rate: Rate
    small: Annotated[
        bool,
        Meta(
            description=f"Fewer than {SMALL_BELOW} bookings or settled visits: too few to compare."
        ),
    ]


class Analytics(Shape):
    hospital_id: EntityId
    group_by: GroupBy
    first_visit: dt.date | None = msgspec.field(name="from")
    last_visit: dt.date | None = msgspec.field(name="to")
    groups: list[GroupOutcomes]
