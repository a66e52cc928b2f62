"""No-show analytics: the outcomes of a hospital's bookings, counted per group in SQL.

Groups are the department, the weekday of the visit, the patient's age band at the visit
(from the profile's birth date) or the lead time (days from booking to visit) in bands.
Rates come with their counts, and a group too small for its rates to compare is marked.

Rates: attendance and no-show are shares of the visits that came due (attended + no-shows,
so they add up to 1); cancellation is a share of all bookings. Bookings still `booked`
count as bookings only: their visit has not been settled yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import asyncpg

from core.queries import query as q

# Fewer bookings or settled visits than this and a group's rates are too uncertain to compare
# (a rate of 0.2 from 30 visits is 0.2 +- 0.15 at 95%).
SMALL_BELOW: Final = 30
UNKNOWN: Final = "unknown"
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class GroupBy(StrEnum):
    AGE_BAND = "age_band"
    DEPARTMENT = "department"
    WEEKDAY = "weekday"
    LEAD_TIME = "lead_time"


@dataclass(frozen=True, slots=True)
class Bands:
    """Contiguous bands from their lower bounds: (0, 18, 35) are 0-17, 18-34 and 35+."""

    lower_bounds: tuple[int, ...]
    unit: str = ""

    @property
    def labels(self) -> tuple[str, ...]:
        uppers = (*self.lower_bounds[1:], None)
        return tuple(
            self._label(low, high) for low, high in zip(self.lower_bounds, uppers, strict=True)
        )

    def _label(self, low: int, high: int | None) -> str:
        if high is None:
            return f"{low}{self.unit}+"
        if high == low + 1:
            return f"{low}{self.unit}"
        return f"{low}-{high - 1}{self.unit}"

    def label(self, bucket: int | None) -> str:
        """The label of a width_bucket number (1 is the first band); 0 or None is unknown."""
        if not bucket:
            return UNKNOWN
        return self.labels[bucket - 1]

    def of(self, value: int | None) -> str:
        """The label of the band `value` falls in, as the SQL buckets it."""
        if value is None or value < self.lower_bounds[0]:
            return UNKNOWN
        return self.labels[sum(1 for low in self.lower_bounds if value >= low) - 1]


AGE_BANDS: Final = Bands((0, 18, 35, 50, 65))
LEAD_TIME_BANDS: Final = Bands((0, 1, 2, 7, 14, 30), unit="d")


@dataclass(frozen=True, slots=True)
class GroupOutcomes:
    group: str
    bookings: int
    attended: int
    no_shows: int
    cancellations: int

    @property
    def settled(self) -> int:
        """Visits that came due: the denominator of the attendance and no-show rates."""
        return self.attended + self.no_shows

    @property
    def attendance_rate(self) -> float | None:
        return self.attended / self.settled if self.settled else None

    @property
    def no_show_rate(self) -> float | None:
        return self.no_shows / self.settled if self.settled else None

    @property
    def cancellation_rate(self) -> float | None:
        return self.cancellations / self.bookings if self.bookings else None

    @property
    def small(self) -> bool:
        return min(self.bookings, self.settled) < SMALL_BELOW


async def outcomes(
    pool: asyncpg.Pool,
    hospital_id: str,
    group_by: GroupBy,
    first_visit: dt.date = dt.date.min,
    last_visit: dt.date = dt.date.max,
) -> list[GroupOutcomes]:
    """Each group with at least one booking, in the group's natural order (bands and weekdays
    in order with unknown last, departments by id)."""
    rows = await pool.fetch(
        q("booking_outcomes"),
        hospital_id,
        group_by.value,
        first_visit,
        last_visit,
        list(AGE_BANDS.lower_bounds),
        list(LEAD_TIME_BANDS.lower_bounds),
    )
    keyed = sorted((_sort_key(group_by, r), r) for r in rows)
    return [
        GroupOutcomes(
            group=_label(group_by, row),
            bookings=row["bookings"],
            attended=row["attended"],
            no_shows=row["no_shows"],
            cancellations=row["cancellations"],
        )
        for _, row in keyed
    ]


def _label(group_by: GroupBy, row: asyncpg.Record) -> str:
    bucket = row["bucket"]
    match group_by:
        case GroupBy.DEPARTMENT:
            return str(row["department"])
        case GroupBy.WEEKDAY:
            return WEEKDAYS[bucket - 1]
        case GroupBy.AGE_BAND:
            return AGE_BANDS.label(bucket)
        case GroupBy.LEAD_TIME:
            return LEAD_TIME_BANDS.label(bucket)


def _sort_key(group_by: GroupBy, row: asyncpg.Record) -> Sequence[object]:
    if group_by is GroupBy.DEPARTMENT:
        return (row["department"],)
    bucket = row["bucket"]
    # Unknown (NULL or 0) after every band.
    return (not bucket, bucket or 0)
