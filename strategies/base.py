"""The inventory strategy contract. The base class does the cross-cutting work (timing,
metrics, error wrapping); a strategy implements only `_book` and `_cancel`."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import asyncpg
import redis.exceptions

from core.domain import Booking, BookingRequest, BookResult, Code, Rejected, Schedule
from core.errors import ServiceUnavailable
from core.metrics import BOOKING_OUTCOMES, BOOKING_SECONDS, CANCELLATIONS
from core.stores import Stores

# Failures of a store that mean "try again later", never "the booking is refused".
STORE_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


class InventoryStrategy(ABC):
    name: ClassVar[str]

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.ledger = stores.ledger
        self.settings = stores.settings
        self._outcome_counters = {
            code: BOOKING_OUTCOMES.labels(self.name, code) for code in [*Code, "booked"]
        }
        self._latency = BOOKING_SECONDS.labels(self.name)

    async def start(self) -> None:
        """Prepare stores (load scripts, warm caches) and start background work."""

    async def close(self) -> None:
        """Stop background work. Stores are closed by their owner."""

    async def book(self, req: BookingRequest) -> BookResult:
        started = time.perf_counter()
        try:
            result = await self._book(req)
        except STORE_FAILURES as exc:
            self._outcome_counters[Code.BUSY].inc()
            await self._forget_stale_connections(exc)
            raise ServiceUnavailable(f"{self.name}: {type(exc).__name__}") from exc
        self._latency.observe(time.perf_counter() - started)
        self._outcome_counters[result.code if isinstance(result, Rejected) else "booked"].inc()
        return result

    async def cancel(self, booking: Booking) -> Booking | None:
        """Cancel an active booking and return its number. None if it was no longer active."""
        try:
            cancelled = await self._cancel(booking)
        except STORE_FAILURES as exc:
            await self._forget_stale_connections(exc)
            raise ServiceUnavailable(f"{self.name}: {type(exc).__name__}") from exc
        if cancelled is not None:
            CANCELLATIONS.labels(self.name).inc()
        return cancelled

    async def _forget_stale_connections(self, exc: BaseException) -> None:
        # After a Redis restart every idle pooled connection is dead and would fail once on
        # its next use; dropping them all on the first failure makes recovery one error long.
        if isinstance(exc, redis.exceptions.ConnectionError):
            await self.stores.redis.connection_pool.disconnect(inuse_connections=False)

    # Hooks for strategies that keep state outside the ledger (Redis). The ledger has already
    # been written when they are called.
    async def schedules_created(self, schedules: Sequence[Schedule]) -> None:
        """New schedules exist in the ledger."""

    async def rules_changed(self, hospital_id: str) -> None:
        """A hospital's rules changed in the ledger."""

    async def blacklist_changed(self, hospital_id: str, patient_id: str) -> None:
        """A patient was put on or taken off a hospital's blacklist in the ledger."""

    @abstractmethod
    async def _book(self, req: BookingRequest) -> BookResult:
        """Take a free number and write the booking, checking every rule in one atomic step.

        Returns the committed booking, or Rejected with the code of API.md. A reused
        Idempotency-Key is answered Rejected(Code.IDEMPOTENCY_CONFLICT); the core then
        decides between a replay and a conflict.
        """

    @abstractmethod
    async def _cancel(self, booking: Booking) -> Booking | None:
        """Mark the booking cancelled in the ledger and make its number bookable again."""
