"""A season into the real ledger, in bulk: schedules through the ledger's own code, then
profiles and settled bookings in a few large statements under the ledger's constraints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Final

import asyncpg

from bench.season.generate import Season, SimulatedBooking
from core.domain import Schedule
from core.ledger import Ledger
from core.queries import parse

ROWS_PER_STATEMENT: Final = 20_000


@cache
def _query(name: str) -> str:
    return parse(files("bench").joinpath("sql", "season.sql").read_text())[name]


async def write(pool: asyncpg.Pool, season: Season) -> None:
    """Schedules, profiles (of patients who keep one) and bookings of `season`. Run it on a
    ledger that holds no season of the same region yet."""
    schedules = await Ledger(pool).create_schedules(season.schedules, dt.datetime.now(dt.UTC))
    profiled = [p for p in season.patients if p.has_profile]
    await pool.execute(
        _query("insert_profiles"),
        [p.id for p in profiled],
        [p.birth_date for p in profiled],
        [p.sex.value for p in profiled],
    )
    for start in range(0, len(season.bookings), ROWS_PER_STATEMENT):
        chunk = season.bookings[start : start + ROWS_PER_STATEMENT]
        await pool.execute(_query("insert_settled_bookings"), *_columns(schedules, chunk))


def _columns(
    schedules: Sequence[Schedule], bookings: Sequence[SimulatedBooking]
) -> list[list[object]]:
    rows = [(schedules[b.schedule], b) for b in bookings]
    return [
        [s.id for s, _ in rows],
        [b.patient.id for _, b in rows],
        [s.hospital_id for s, _ in rows],
        [s.department_id for s, _ in rows],
        [s.visit_date for s, _ in rows],
        [b.number for _, b in rows],
        [b.verification_code for _, b in rows],
        [b.status.value for _, b in rows],
        [b.request_id for _, b in rows],
        [b.created_at for _, b in rows],
        [b.cancelled_at for _, b in rows],
    ]
