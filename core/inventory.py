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

from core.domain import Booking, BookingRequest, BookResult, Schedule
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
        """Cancel an active booking and return its number. None if it was no longer active."""

    # Admin changes, called once the ledger has been written, for implementations that keep
    # state outside the ledger (Redis).

    @abstractmethod
    async def schedules_created(self, schedules: Sequence[Schedule]) -> None:
        """New schedules exist in the ledger."""

    @abstractmethod
    async def rules_changed(self, hospital_id: str) -> None:
        """A hospital's rules changed in the ledger."""

    @abstractmethod
    async def blacklist_changed(self, hospital_id: str, patient_id: str) -> None:
        """A patient was put on or taken off a hospital's blacklist in the ledger."""


# How the server makes the inventory once the stores are open: a strategy class will do.
InventoryFactory = Callable[[Stores], Inventory]
