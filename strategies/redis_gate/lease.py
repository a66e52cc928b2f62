"""A lease: a number taken in Redis for one request, its ledger row due before a deadline.

In a module of its own because the gate takes and settles leases, the coalescer confirms
them and the reconciler settles abandoned ones. Deadlines are epoch milliseconds, as the Lua
scripts compare them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core.domain import BookingRequest
from core.keys import SlotKeys


def epoch_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Lease:
    """A number taken in Redis for one request; its ledger row is due before the deadline."""

    req: BookingRequest
    number: int
    deadline_ms: int
    slot: SlotKeys
    free: str
