"""The inventory port: what the booking service asks of whatever keeps the numbers.

Named for what sits behind it, the inventory of each schedule's numbers, not for how it is
kept: the core depends on this interface alone, each module of strategies/ implements it (by
way of strategies.base, which adds timing, metrics and error wrapping), and the server's app
factory picks one by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

from asyncpg import Connection

from core.domain import Booking, BookingRequest, BookResult, Resize, Schedule
from core.stores import Store, Stores


class Inventory(ABC):
    # The name clients and results know the strategy by, e.g. "redis-lua".
    name: ClassVar[str]
    # The stores it cannot work without, which /healthz checks (both unless it says less).
    stores_needed: ClassVar[frozenset[Store]] = frozenset(Store)

    @abstractmethod
    async def start(self) -> None:
        """Prepare stores (load scripts, warm caches) and start background work."""

    @abstractmethod
    async def close(self) -> None:
        """Stop background work. Stores are closed by their owner."""

    @abstractmethod
    async def book(self, req: BookingRequest) -> BookResult:
        """Take a free number and write the booking, checking every rule in one atomic step.

        Returns the committed booking or Rejected with the code of API.md; raises
        ServiceUnavailable when a store failed (see core.failures).
        """

    @abstractmethod
    async def cancel(self, booking: Booking) -> Booking | None:
        """Cancel an active booking and return its number, through numbers_freeing and
        numbers_freed as every transition that frees one. None if it was no longer active."""

    # Changes made in the ledger outside a booking, for implementations that keep state
    # outside it (Redis). Each comes as two calls: one inside the ledger transaction making
    # the change, to record atomically with it what must follow; one after its commit, to
    # apply that now. The second never raises: the ledger has the change, and what it could
    # not apply is applied later from the record.

    @abstractmethod
    async def schedules_created(self, schedules: Sequence[Schedule]) -> None:
        """New schedules exist in the ledger (committed)."""

    @abstractmethod
    async def numbers_freeing(self, conn: Connection, bookings: Sequence[Booking]) -> None:
        """Inside the transaction that frees these bookings' numbers: a cancellation, and
        every other transition that frees one (hold expiry, suspension; see core.lifecycle)."""

    @abstractmethod
    async def numbers_freed(self, bookings: Sequence[Booking]) -> None:
        """After that transaction committed: make the numbers bookable again."""

    @abstractmethod
    async def schedule_suspending(self, conn: Connection, schedule: Schedule) -> None:
        """Inside the transaction that suspends the schedule: no number of it may be taken
        from then on (the ledger refuses them too, as the last line)."""

    @abstractmethod
    async def schedule_suspended(self, schedule: Schedule) -> None:
        """After that transaction committed."""

    @abstractmethod
    async def capacity_changing(self, conn: Connection, resizes: Sequence[Resize]) -> None:
        """Inside the transaction that added numbers to these schedules or took free ones off
        (a HIS sync, an upsert): the ledger has the new numbers already."""

    @abstractmethod
    async def capacity_changed(self, resizes: Sequence[Resize]) -> None:
        """After that transaction committed: offer the numbers added, stop offering those
        taken off."""

    @abstractmethod
    async def config_changing(self, conn: Connection, hospital_id: str) -> None:
        """Inside the transaction that changes a hospital's rules or blacklist."""

    @abstractmethod
    async def config_changed(self, hospital_id: str) -> None:
        """After that transaction committed."""


# How the server makes the inventory once the stores are open: a strategy class will do.
InventoryFactory = Callable[[Stores], Inventory]
