"""Automatic blacklisting by a hospital's rules (API.md 1.1, Hospital operations).

A cancel by the patient (one later than `late_cancel_minutes` before the visit counts
double) and a no-show are breaches. Each is recorded once per booking in the transaction of
the transition that made it (core.lifecycle.effects), and in that same transaction a
patient whose unspent breaches within `window_days` reach `max_cancellations` or
`max_no_shows` is blacklisted at the hospital for `ban_days`, unless whitelisted. The
breaches behind a ban are spent on it; the ban ends by itself at its `until`. Like a manual
entry, an automatic one bumps the hospital's config version and is recorded for the
inventory (`config_changing`), so the Redis strategies copy it durably; until they do, the
ledger's booking statement refuses the patient (invariant 5).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import groupby

import asyncpg
import orjson

from core import notifications
from core.domain import Booking, Code
from core.errors import SlotrushError
from core.inventory import Inventory
from core.paging import Page, page_of
from core.queries import query as q


class Breach(StrEnum):
    """What a booking's end counts as against the rules."""

    CANCELLATION = "cancellation"
    NO_SHOW = "no_show"


@dataclass(frozen=True, slots=True)
class BlacklistRules:
    max_cancellations: int = 3
    max_no_shows: int = 2
    window_days: int = 90
    ban_days: int = 30
    late_cancel_minutes: int = 120


@dataclass(frozen=True, slots=True)
class BreachEvent:
    booking_id: int
    # cancellation, late_cancellation or no_show
    kind: str
    weight: int
    occurred_at: dt.datetime


@dataclass(frozen=True, slots=True)
class BlacklistEntry:
    patient_id: str
    until: dt.datetime
    # manual or automatic
    source: str
    since: dt.datetime
    # The breaches behind an automatic entry; none for a manual one.
    events: list[BreachEvent]


async def breaches(
    conn: asyncpg.Connection, inventory: Inventory, ended: Sequence[Booking], breach: Breach
) -> None:
    """Inside the transaction that ended these bookings: count them against their hospital's
    rules and blacklist whoever crosses them."""
    for hospital_id, of_hospital in groupby(
        sorted(ended, key=lambda b: b.hospital_id), key=lambda b: b.hospital_id
    ):
        ids = [b.id for b in of_hospital]
        patients = [
            r["patient_id"]
            for r in await conn.fetch(q("record_breaches"), hospital_id, ids, breach)
        ]
        if patients:
            await _ban_crossers(conn, inventory, hospital_id, patients)


async def _ban_crossers(
    conn: asyncpg.Connection, inventory: Inventory, hospital_id: str, patients: list[str]
) -> None:
    await conn.execute(q("lock_breaching_patients"), hospital_id, patients)
    banned = await conn.fetch(q("ban_breaching_patients"), hospital_id, patients)
    if not banned:
        return
    await conn.execute(q("bump_config_version"), hospital_id)
    await inventory.config_changing(conn, hospital_id)
    for ban in banned:
        await notifications.blacklisted(
            conn,
            hospital_id,
            ban["patient_id"],
            until=ban["until"],
            since=ban["since"],
            source="automatic",
        )


# --- the hospital's staff ----------------------------------------------------------------


async def rules(pool: asyncpg.Pool, hospital_id: str) -> BlacklistRules:
    row = await pool.fetchrow(q("get_blacklist_rules"), hospital_id)
    if row is None:
        raise SlotrushError(Code.BLACKLIST_RULES_NOT_FOUND)
    return BlacklistRules(**dict(row))


async def put_rules(pool: asyncpg.Pool, hospital_id: str, rules: BlacklistRules) -> None:
    await pool.execute(
        q("put_blacklist_rules"),
        hospital_id,
        rules.max_cancellations,
        rules.max_no_shows,
        rules.window_days,
        rules.ban_days,
        rules.late_cancel_minutes,
    )


async def delete_rules(pool: asyncpg.Pool, hospital_id: str) -> None:
    await pool.execute(q("delete_blacklist_rules"), hospital_id)


async def whitelist(pool: asyncpg.Pool, hospital_id: str, patient_id: str) -> dt.datetime:
    """Exempt the patient from automatic blacklisting; since when it is."""
    since: dt.datetime = await pool.fetchval(q("put_whitelist"), hospital_id, patient_id)
    return since


async def unwhitelist(pool: asyncpg.Pool, hospital_id: str, patient_id: str) -> None:
    await pool.execute(q("delete_whitelist"), hospital_id, patient_id)


async def blacklist_page(
    pool: asyncpg.Pool, hospital_id: str, *, after: str | None, limit: int
) -> Page[BlacklistEntry, str]:
    """The entries in force, in patient order."""
    rows = await pool.fetch(q("list_blacklist"), hospital_id, after, limit + 1)
    return page_of([_entry(row) for row in rows], limit, lambda e: e.patient_id)


def _entry(row: asyncpg.Record) -> BlacklistEntry:
    events = [
        BreachEvent(
            booking_id=int(e["booking_id"]),
            kind=e["kind"],
            weight=e["weight"],
            occurred_at=dt.datetime.fromisoformat(e["occurred_at"]),
        )
        for e in orjson.loads(row["events"])
    ]
    return BlacklistEntry(row["patient_id"], row["until"], row["source"], row["since"], events)
