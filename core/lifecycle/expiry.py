"""Unpaid holds lapse: pending_payment -> expired once hold_expires_at has passed.

A sweep in bounded batches, each one transaction that frees its numbers through the
inventory's release path, so a lapsed hold's number is bookable again in every strategy
(invariant 9). Holds locked by a concurrent sweep, cancel or payment are skipped, not
waited for: whatever holds the lock decides them.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from core.inventory import Inventory
from core.lifecycle.effects import Ending
from core.lifecycle.releasing import bookings, holds_ended
from core.queries import query as q

BATCH: Final = 500
# Batches per sweep: bounds one run; what is left is the next run's.
_BATCHES_PER_SWEEP: Final = 20


async def expire_holds(pool: asyncpg.Pool, inventory: Inventory, *, batch: int = BATCH) -> int:
    """Expire lapsed holds until none is left (or the sweep's bound); how many expired."""
    expired = 0
    for _ in range(_BATCHES_PER_SWEEP):
        async with pool.acquire() as conn, conn.transaction():
            ended = bookings(await conn.fetch(q("expire_holds"), batch))
            await holds_ended(conn, inventory, ended, Ending.EXPIRED)
        if ended:
            await inventory.numbers_freed(ended)
        expired += len(ended)
        if len(ended) < batch:
            break
    return expired
