"""Hospital local time: visit dates and session starts are on the hospital's wall clock.

A visit date is a date of the hospital's calendar and each period starts at a local time, so
when a session starts, when its cancel window closes and when its day is over depend on the
hospital's IANA time zone. Every instant computed here is an aware UTC datetime, as the
ledger stores them.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from zoneinfo import ZoneInfo, available_timezones

from core.domain import Period

# Names the zone database holds that name no place: the machine's own zone and a placeholder.
_NOT_PLACES: Final = frozenset({"localtime", "posixrules", "Factory"})
ZONE_NAMES: Final = frozenset(available_timezones() - _NOT_PLACES)
UTC: Final = ZoneInfo("UTC")

# When each session starts on the hospital's wall clock; the cancel cutoff counts back from here.
PERIOD_STARTS: Final[dict[Period, dt.time]] = {
    Period.AM: dt.time(8, 0),
    Period.PM: dt.time(13, 0),
    Period.NIGHT: dt.time(18, 0),
}


def local_date(now: dt.datetime, zone: ZoneInfo) -> dt.date:
    """The date on the hospital's calendar at the instant `now`."""
    return now.astimezone(zone).date()


def visit_starts_at(visit_date: dt.date, period: Period, zone: ZoneInfo) -> dt.datetime:
    """The instant a session starts, in UTC; the same wall-clock time on both sides of a
    daylight-saving change, so a different UTC time."""
    local = dt.datetime.combine(visit_date, PERIOD_STARTS[period], tzinfo=zone)
    return local.astimezone(dt.UTC)


def visit_day_over(visit_date: dt.date, zone: ZoneInfo, now: dt.datetime) -> bool:
    """Whether the hospital's calendar has moved past the visit date."""
    return local_date(now, zone) > visit_date
