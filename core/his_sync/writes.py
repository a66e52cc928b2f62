"""The ledger statements of a sync or an upsert, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import asyncpg

from core.domain import Resize, Schedule
from core.his_sync.plan import Highest, Update
from core.ledger import schedule_from_row
from core.queries import query as q


async def lock_hospital(conn: asyncpg.Connection, hospital_id: str) -> None:
    await conn.execute(q("his_lock_hospital"), hospital_id)


async def live_schedules(
    conn: asyncpg.Connection | asyncpg.Pool,
    hospital_id: str,
    external_ids: Collection[str] | None = None,
) -> dict[str, Schedule]:
    """The hospital's live schedules with an external_id (of these ids only, if given)."""
    ids = list(external_ids) if external_ids is not None else None
    rows = await conn.fetch(q("his_live_schedules"), hospital_id, ids)
    return {row["external_id"]: schedule_from_row(row) for row in rows}


async def live_names(
    conn: asyncpg.Connection | asyncpg.Pool, hospital_id: str
) -> tuple[set[str], set[str]]:
    """(departments, doctors) of the hospital that exist."""
    rows = await conn.fetch(q("his_live_names"), hospital_id)
    departments = {r["id"] for r in rows if r["kind"] == "department"}
    return departments, {r["id"] for r in rows if r["kind"] == "doctor"}


async def lock_schedules(conn: asyncpg.Connection, hospital_id: str, ids: Sequence[int]) -> None:
    if ids:
        await conn.fetch(q("his_lock_schedules"), hospital_id, list(ids))


async def highest_numbers(
    conn: asyncpg.Connection | asyncpg.Pool, hospital_id: str, updates: Sequence[Update]
) -> dict[int, Highest]:
    """The highest numbers held and named of the schedules these updates cut."""
    ids = [u.schedule.id for u in updates if u.cut]
    if not ids:
        return {}
    rows = await conn.fetch(q("his_highest_numbers"), hospital_id, ids)
    return {r["id"]: Highest(r["held"], r["named"]) for r in rows}


async def apply_updates(
    conn: asyncpg.Connection, hospital_id: str, updates: Sequence[Update]
) -> list[Resize]:
    """Write the updates (under the schedules' locks; cuts already checked); the capacity
    changes the inventory must learn."""
    if not updates:
        return []
    await conn.execute(
        q("his_update_schedules"),
        hospital_id,
        [u.schedule.id for u in updates],
        [u.capacity for u in updates],
        [u.fee_cents for u in updates],
        [u.opens_at for u in updates],
    )
    grown = [u for u in updates if u.capacity > u.schedule.capacity]
    if grown:
        await conn.execute(
            q("his_add_numbers"),
            hospital_id,
            [u.schedule.id for u in grown],
            [u.schedule.capacity for u in grown],
            [u.capacity for u in grown],
        )
    cut = [u for u in updates if u.cut]
    if cut:
        await conn.execute(
            q("his_drop_numbers"),
            hospital_id,
            [u.schedule.id for u in cut],
            [u.capacity for u in cut],
        )
    return [
        Resize(u.updated, u.schedule.capacity) for u in updates if u.capacity != u.schedule.capacity
    ]
