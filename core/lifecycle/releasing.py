"""Ending holds: what every transition that frees numbers does around its statement."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from core.domain import Booking
from core.inventory import Inventory
from core.ledger import booking_from_row
from core.lifecycle import effects
from core.lifecycle.effects import Ending


def bookings(rows: Sequence[asyncpg.Record]) -> list[Booking]:
    return [booking_from_row(row) for row in rows]


async def holds_ended(
    conn: asyncpg.Connection, inventory: Inventory, ended: Sequence[Booking], how: Ending
) -> None:
    """Inside the transaction that ended these holds (and freed their numbers in the ledger):
    record what the inventory owes (its releases) and what follows (effects)."""
    if ended:
        await inventory.numbers_freeing(conn, ended)
        await effects.booking_ended(conn, inventory, ended, how)
