"""A patient cancels a booking that holds a number: pending_payment or booked -> cancelled.

Runs inside the strategy's cancel transaction (each strategy takes the locks it needs
first); the strategy's `cancel` makes the number bookable again after the commit.
"""

from __future__ import annotations

import asyncpg

from core.domain import Booking
from core.inventory import Inventory
from core.lifecycle.effects import Ending
from core.lifecycle.releasing import bookings, holds_ended
from core.queries import query as q


async def cancel_by_patient(
    conn: asyncpg.Connection, inventory: Inventory, booking: Booking
) -> Booking | None:
    """The cancelled booking, or None if it held no number any more (cancelled, expired or
    settled meanwhile)."""
    rows = await conn.fetch(q("cancel_by_patient"), booking.hospital_id, booking.id)
    cancelled = bookings(rows)
    await holds_ended(conn, inventory, cancelled, Ending.CANCELLED)
    return cancelled[0] if cancelled else None
