"""The rates a simulated season is drawn from: the generating table, stated once.

Published figures frame it: outpatient no-shows are reported at 3-34% abroad and 10-50% in
China, and the elderly keep their appointments best, teenagers worst; the further ahead a
visit was booked, the likelier it is missed or cancelled. The table is a plausible region,
not a measurement: a booking's no-show chance (of visits not cancelled) is its age band's
base rate times its lead-time factor, and its cancellation chance likewise.

| age band | no-show base | cancellation base |  | lead time | no-show factor | cancel factor |
|---|---|---|---|---|---|---|
| 0-17  | 0.22 | 0.08 | | 0d     | 0.4 | 0.2 |
| 18-34 | 0.18 | 0.10 | | 1d     | 0.7 | 0.5 |
| 35-49 | 0.13 | 0.09 | | 2-6d   | 1.0 | 1.0 |
| 50-64 | 0.10 | 0.07 | | 7-13d  | 1.3 | 1.4 |
| 65+   | 0.07 | 0.05 | | 14-29d | 1.6 | 1.8 |
|       |      |      | | 30d+   | 2.0 | 2.2 |

No-show chances run from 0.03 (65+, booked the same day) to 0.44 (0-17, 30+ days ahead).
"""

from __future__ import annotations

from typing import Final

from core.analytics import AGE_BANDS, LEAD_TIME_BANDS

NO_SHOW_BASE: Final = dict(zip(AGE_BANDS.labels, (0.22, 0.18, 0.13, 0.10, 0.07), strict=True))
CANCEL_BASE: Final = dict(zip(AGE_BANDS.labels, (0.08, 0.10, 0.09, 0.07, 0.05), strict=True))
NO_SHOW_LEAD_FACTOR: Final = dict(
    zip(LEAD_TIME_BANDS.labels, (0.4, 0.7, 1.0, 1.3, 1.6, 2.0), strict=True)
)
CANCEL_LEAD_FACTOR: Final = dict(
    zip(LEAD_TIME_BANDS.labels, (0.2, 0.5, 1.0, 1.4, 1.8, 2.2), strict=True)
)

# Who books, and how far ahead: the mix of the population by age band, and of bookings by
# lead time.
AGE_MIX: Final = dict(zip(AGE_BANDS.labels, (0.16, 0.24, 0.22, 0.20, 0.18), strict=True))
LEAD_MIX: Final = dict(
    zip(LEAD_TIME_BANDS.labels, (0.06, 0.12, 0.37, 0.27, 0.13, 0.05), strict=True)
)


def no_show_chance(age_band: str, lead_band: str) -> float:
    """Of a visit not cancelled."""
    return NO_SHOW_BASE[age_band] * NO_SHOW_LEAD_FACTOR[lead_band]


def cancel_chance(age_band: str, lead_band: str) -> float:
    return CANCEL_BASE[age_band] * CANCEL_LEAD_FACTOR[lead_band]
