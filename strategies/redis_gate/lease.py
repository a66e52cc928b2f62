"""A lease: a number taken in Redis for one request, until its ledger row is written or the
number is given back.

In a module of its own because the gate takes and settles leases, the coalescer confirms
them and the reconciler settles abandoned ones. Deadlines are epoch milliseconds, as the Lua
scripts compare them; they only say when a lease is worth looking at, never whether it may
still be written (its claim in the ledger decides that, see fence).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from core.domain import BookingRequest
from core.keys import SlotKeys


def epoch_ms() -> int:
    return int(time.time() * 1000)


def new_lease_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Lease:
    """A number taken in Redis for one request. Its id is the request id of the ledger row
    written under it, and the key of its claim."""

    req: BookingRequest
    number: int
    id: str
    slot: SlotKeys
    free: str

    @property
    def written(self) -> Written:
        schedule = self.req.schedule
        return Written(
            self.id, str(schedule.id), str(self.number), self.req.patient_id, schedule.department_id
        )


class Written(NamedTuple):
    """A lease whose row is in the ledger, as its confirmation carries it: enough to count
    the booking in Redis again if the lease was lost with the rest of Redis's state. Empty
    fields but the id: only settle the lease."""

    lease_id: str
    schedule_id: str = ""
    number: str = ""
    patient_id: str = ""
    department_id: str = ""
