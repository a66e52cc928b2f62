"""The base class of every strategy: it implements the inventory port of core.inventory.

The public methods do the cross-cutting work (timing, metrics, error wrapping); a strategy
implements only `_book` and `_cancel`, and the hooks it needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections.abc import Sequence

import asyncpg
import redis.exceptions

from core.domain import Booking, BookingRequest, BookResult, Code, Rejected, Resize, Schedule
from core.errors import ServiceUnavailable
from core.failpoints import CANCEL_AFTER_COMMIT, failpoint
from core.failures import STORE_FAILURES
from core.inventory import Inventory
from core.metrics import BOOKING_OUTCOMES, BOOKING_SECONDS, CANCELLATIONS
from core.stores import Stores, drop_idle_connections

log = logging.getLogger("slotrush.strategy")


class InventoryStrategy(Inventory):
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.ledger = stores.ledger
        self.settings = stores.settings
        self._outcome_counters = {
            code: BOOKING_OUTCOMES.labels(self.name, code) for code in [*Code, "booked"]
        }
        self._latency = BOOKING_SECONDS.labels(self.name)
        # Cancels left to finish after their caller was cancelled (see cancel).
        self._finishing: set[asyncio.Task[Booking | None]] = set()

    # Nothing to start or stop unless a strategy has background work.
    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

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
        # A cancel runs to its end even when its caller is cancelled (client gone, deadline
        # passed): it is one short ledger transaction and a release in Redis, and cut between
        # the two it would keep the number out of Redis.
        task = asyncio.ensure_future(self._cancel(booking))
        try:
            cancelled = await asyncio.shield(task)
        except asyncio.CancelledError:
            self._finishing.add(task)
            task.add_done_callback(self._finished)
            raise
        except STORE_FAILURES as exc:
            await self._forget_stale_connections(exc)
            raise ServiceUnavailable(f"{self.name}: {type(exc).__name__}") from exc
        if cancelled is not None:
            CANCELLATIONS.labels(self.name).inc()
            failpoint(CANCEL_AFTER_COMMIT)
            await self.numbers_freed([cancelled])
        return cancelled

    def _finished(self, task: asyncio.Task[Booking | None]) -> None:
        self._finishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: a cancel whose caller left failed: %r", self.name, task.exception())

    async def _forget_stale_connections(self, exc: BaseException) -> None:
        # After a Redis restart every idle pooled connection is dead and would fail once on
        # its next use; dropping them all on the first failure makes recovery one error long.
        if isinstance(exc, redis.exceptions.ConnectionError):
            await drop_idle_connections(self.stores.redis)

    # The change hooks do nothing unless a strategy keeps state outside the ledger.
    async def schedules_created(self, schedules: Sequence[Schedule]) -> None:
        pass

    async def numbers_freeing(self, conn: asyncpg.Connection, bookings: Sequence[Booking]) -> None:
        pass

    async def numbers_freed(self, bookings: Sequence[Booking]) -> None:
        pass

    async def schedule_suspending(self, conn: asyncpg.Connection, schedule: Schedule) -> None:
        pass

    async def schedule_suspended(self, schedule: Schedule) -> None:
        pass

    async def capacity_changing(self, conn: asyncpg.Connection, resizes: Sequence[Resize]) -> None:
        pass

    async def capacity_changed(self, resizes: Sequence[Resize]) -> None:
        pass

    async def config_changing(self, conn: asyncpg.Connection, hospital_id: str) -> None:
        pass

    async def config_changed(self, hospital_id: str) -> None:
        pass

    @abstractmethod
    async def _book(self, req: BookingRequest) -> BookResult:
        """Take a free number and write the booking, checking every rule in one atomic step.

        Returns the committed booking, or Rejected with the code of API.md. A reused
        Idempotency-Key is answered Rejected(Code.IDEMPOTENCY_CONFLICT); the core then
        decides between a replay and a conflict.
        """

    @abstractmethod
    async def _cancel(self, booking: Booking) -> Booking | None:
        """Cancel the booking in the ledger (core.lifecycle.cancellation, which calls
        numbers_freeing in the transaction); `cancel` calls numbers_freed after the commit."""
