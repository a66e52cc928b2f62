"""What the analytics of a simulated season should find, and how far off chance may put it.

Given who booked what and how far ahead, a group's outcomes are independent draws at known
chances: its cancellation count is a sum of Bernoulli(p_cancel) over its bookings, its
no-show count a sum of Bernoulli(p_no_show) over its bookings not cancelled. The expected
rate is the mean chance and its standard error sqrt(sum p(1-p)) / n; a rate farther than
4 standard errors from its expectation happens by chance less than once in 15,000.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bench.season import rates
from bench.season.generate import Season, SimulatedBooking
from core.analytics import UNKNOWN, WEEKDAYS, GroupBy
from core.domain import BookingStatus

# Standard errors allowed between a recovered rate and its expectation.
TOLERANCE_SE: Final = 4.0


@dataclass(frozen=True)
class ExpectedRate:
    rate: float
    standard_error: float

    @property
    def tolerance(self) -> float:
        return TOLERANCE_SE * self.standard_error

    def admits(self, observed: float) -> bool:
        return abs(observed - self.rate) <= self.tolerance


@dataclass(frozen=True)
class ExpectedGroup:
    bookings: int
    settled: int
    no_show: ExpectedRate
    cancellation: ExpectedRate


def _mean_chance(chances: list[float]) -> ExpectedRate:
    n = len(chances)
    if n == 0:
        return ExpectedRate(math.nan, math.nan)
    spread = math.sqrt(sum(p * (1 - p) for p in chances))
    return ExpectedRate(sum(chances) / n, spread / n)


def group_of(season: Season, group_by: GroupBy) -> Callable[[SimulatedBooking], str]:
    """The analytics' group of a booking, computed here from what the season generated."""
    schedules = season.schedules
    match group_by:
        case GroupBy.DEPARTMENT:
            return lambda b: schedules[b.schedule].department_id
        case GroupBy.WEEKDAY:
            return lambda b: WEEKDAYS[schedules[b.schedule].visit_date.weekday()]
        case GroupBy.AGE_BAND:
            return lambda b: b.age_band if b.patient.has_profile else UNKNOWN
        case GroupBy.LEAD_TIME:
            return lambda b: b.lead_band


def expected(season: Season, hospital_id: str, group_by: GroupBy) -> dict[str, ExpectedGroup]:
    """Each group of one hospital's bookings, with the rates its generating chances give."""
    label = group_of(season, group_by)
    members: dict[str, list[SimulatedBooking]] = defaultdict(list)
    for booking in season.bookings:
        if season.schedules[booking.schedule].hospital_id == hospital_id:
            members[label(booking)].append(booking)
    found = {}
    for group, bookings in members.items():
        settled = [b for b in bookings if b.status is not BookingStatus.CANCELLED]
        found[group] = ExpectedGroup(
            bookings=len(bookings),
            settled=len(settled),
            no_show=_mean_chance([rates.no_show_chance(b.age_band, b.lead_band) for b in settled]),
            cancellation=_mean_chance(
                [rates.cancel_chance(b.age_band, b.lead_band) for b in bookings]
            ),
        )
    return found
