"""Check-in at the counter: the patient's verification code, on the visit date, at that
hospital turns booked into attended. A code is single use; any code that names no booked
booking of this hospital's today is booking_not_found.

Wrong codes are counted per hospital and staff member in PostgreSQL (so a deployment
without Redis refuses brute force too): past `ATTEMPTS` within `WINDOW_SECONDS`, every try
is rate_limited until the window ends.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import asyncpg

from core.domain import Booking, Code
from core.errors import SlotrushError
from core.ledger import booking_from_row
from core.lifecycle import effects
from core.queries import query as q

ATTEMPTS: Final = 10
WINDOW_SECONDS: Final = 300


async def check_in(
    pool: asyncpg.Pool, hospital_id: str, staff: str, code: str, today: dt.date
) -> Booking:
    """The attended booking; `today` is the hospital's local date, `staff` who is checking."""
    async with pool.acquire() as conn:
        retry_after = await conn.fetchval(
            q("check_in_retry_after"), hospital_id, staff, ATTEMPTS, WINDOW_SECONDS
        )
        if retry_after is not None:
            raise SlotrushError(
                Code.RATE_LIMITED, "too many wrong verification codes", retry_after=retry_after
            )
        async with conn.transaction():
            row = await conn.fetchrow(q("check_in"), hospital_id, today, code.upper())
            if row is not None:
                attended = booking_from_row(row)
                await effects.booking_attended(conn, attended)
                return attended
        await conn.execute(q("count_check_in_failure"), hospital_id, staff, WINDOW_SECONDS)
    raise SlotrushError(Code.BOOKING_NOT_FOUND)
