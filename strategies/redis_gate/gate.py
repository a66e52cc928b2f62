"""The gate: Redis decides fast, the ledger records.

A booking takes a number under a lease, writes its row before the deadline and settles the
lease: confirmed once written, given back when the ledger refused it. A cancellation
releases its number in Redis once the ledger has cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from abc import abstractmethod
from collections.abc import Awaitable, Sequence
from typing import Any, ClassVar

import redis.exceptions

from core import ledger
from core.domain import Booking, BookingRequest, BookResult, Code, Rejected, Schedule
from core.failures import STORE_FAILURES
from core.keyed import InUse, LruCache
from core.keys import KeySpace, SlotKeys, slot_tag
from core.metrics import BUSY_RETRIES
from core.queries import fetch_one
from core.redis_scripts import GIVE_BACK, RELEASE, ScriptCall, ScriptRunner
from core.stores import Stores
from strategies.base import InventoryStrategy
from strategies.redis_gate.coalescing import ScriptBatches
from strategies.redis_gate.lease import Lease, epoch_ms
from strategies.redis_gate.loader import SlotLoader
from strategies.redis_gate.reconciler import Reconciler

log = logging.getLogger("slotrush.redis")

# Answers of take.lua and admit.lua besides a number (>= 1).
NOT_LOADED = 0
REFUSALS: dict[int, Rejected] = {
    -1: Rejected(Code.BLACKLISTED),
    -2: Rejected(Code.ALREADY_BOOKED),
    -3: Rejected(Code.DAILY_LIMIT),
    -4: Rejected(Code.DEPARTMENT_LIMIT),
    -5: Rejected(Code.SOLD_OUT),
}
_BUSY = Rejected(Code.BUSY)
# Answers that may change once leases settle (no number free but some out on leases; the
# patient's own booking here still on its lease), with the answer given if they do not.
ON_LEASE: dict[int, Rejected] = {-6: REFUSALS[-5], -7: REFUSALS[-2]}

# A second take only follows a ledger that held the number Redis offered (Redis diverged).
_TAKES_PER_BOOKING = 2
_LOADS_PER_TAKE = 3
# How long a taker waits for leases to settle, and its pauses in between. Writers settle
# within milliseconds; a lease still out after this belongs to a stalled or dead writer, and
# a crowd must not hang on it until the reconciler comes.
_LEASE_PATIENCE = 2.0
_FIRST_PAUSE = 0.002
_MAX_PAUSE = 0.05
_KEY_CACHE_LIMIT = 100_000


class RedisGate(InventoryStrategy):
    """Subclasses supply the take and the write."""

    # How the scripts keep free numbers: "zset" or "list".
    free_store: ClassVar[str]
    # Whether Redis keeps the rules, the blacklist and patient counters (checked at the take).
    rules_in_redis: ClassVar[bool]

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self.keys = KeySpace(self.settings.redis_prefix, self.name)
        self.runner = ScriptRunner(stores.redis)
        self.lease_ms = round(self.settings.lease_seconds * 1000)
        self._batches = ScriptBatches(self.runner, self.keys, self.settings.lease_seconds)
        self._slots: LruCache[str, SlotKeys] = LruCache(_KEY_CACHE_LIMIT)
        self._schedule_keys: LruCache[int, tuple[SlotKeys, str]] = LruCache(_KEY_CACHE_LIMIT)
        # Takers waiting for numbers out on leases, woken when one of ours settles.
        self._settled: InUse[int, asyncio.Event] = InUse(asyncio.Event)
        self._diverged = BUSY_RETRIES.labels(self.name, "redis_diverged")
        self.loader = SlotLoader(self)
        self.reconciler = Reconciler(self)

    async def start(self) -> None:
        try:
            await self.runner.load()
        except STORE_FAILURES as exc:
            # Not fatal: a script answered NOSCRIPT is loaded and resent then.
            log.warning("%s: could not load scripts yet: %r", self.name, exc)
        self.reconciler.start()

    async def close(self) -> None:
        await self.reconciler.close()
        try:
            await self.flush()
        except STORE_FAILURES as exc:
            log.warning("%s: leases left to the reconcilers: %r", self.name, exc)

    # --- what the two strategies do differently ---------------------------------------

    @abstractmethod
    def _take_call(
        self, req: BookingRequest, slot: SlotKeys, free: str, now_ms: int, deadline_ms: int
    ) -> ScriptCall:
        """The script call that takes a number for `req` (answers as take.lua does)."""

    @abstractmethod
    async def _write(self, lease: Lease) -> Booking | Rejected | None:
        """Write the lease's booking to the ledger before its deadline.

        Returns the booking, a rule's rejection found in the ledger, or None when a unique
        rule of the ledger refused the row or the deadline passed.
        """

    # --- booking and cancelling -------------------------------------------------------

    async def _book(self, req: BookingRequest) -> BookResult:
        for _ in range(_TAKES_PER_BOOKING):
            lease = await self.take(req)
            if isinstance(lease, Rejected):
                return lease
            try:
                written = await self._write(lease)
            except Exception:
                await self._give_back_quietly(lease)
                raise
            if isinstance(written, Booking):
                self._batches.confirm_later(lease.slot, req.request_id)
                self._wake(req.schedule.id)
                return written
            if written is not None:
                await self.give_back(lease)
                return written
            refusal = await self._settle_refusal(lease)
            if refusal is not None:
                return refusal
        return _BUSY

    async def take(self, req: BookingRequest) -> Lease | Rejected:
        """Take a number in Redis under a lease, loading the slot first if Redis lacks it."""
        slot, free = self._keys_of(req.schedule)
        self._batches.announce(slot.tag)
        loads = 0
        pause = _FIRST_PAUSE
        patience_ends = math.inf
        while True:
            now_ms = epoch_ms()
            deadline_ms = now_ms + self.lease_ms
            answer = await self.submit(self._take_call(req, slot, free, now_ms, deadline_ms))
            if answer > 0:
                return Lease(req, answer, deadline_ms, slot, free)
            if answer == NOT_LOADED:
                if loads == _LOADS_PER_TAKE:
                    return _BUSY
                loads += 1
                await self.loader.load(req.schedule.hospital_id, req.schedule.visit_date)
            elif answer in ON_LEASE:
                now = time.monotonic()
                patience_ends = min(patience_ends, now + _LEASE_PATIENCE)
                if now >= patience_ends:
                    return ON_LEASE[answer]
                await self._until_settled(req.schedule.id, pause)
                pause = min(pause * 2, _MAX_PAUSE)
            else:
                return REFUSALS[answer]

    async def _settle_refusal(self, lease: Lease) -> Rejected | None:
        """Find out why the ledger refused the lease's row and settle the lease accordingly.

        Returns the answer, or None when Redis offered a number the ledger holds: a sign that
        Redis lost state or missed a write. That number stays out of Redis; take another.
        """
        req, schedule = lease.req, lease.req.schedule
        cause = await fetch_one(
            self.stores.pg,
            "redis_refusal_cause",
            schedule.id,
            lease.number,
            req.patient_id,
            req.idempotency_key,
        )
        if cause["number_held"]:
            self._diverged.inc()
            await self.give_back(lease, number=False)
            return None
        if cause["key_used"]:
            await self.give_back(lease)
            return Rejected(Code.IDEMPOTENCY_CONFLICT)
        if cause["patient_active"]:
            # The ledger has this patient here and Redis did not know: the take's counters
            # now describe that booking, so only the number goes back.
            await self.give_back(lease, counters=False)
            return Rejected(Code.ALREADY_BOOKED)
        # Nothing blocks the row: it came after the deadline. The reconciler settles it.
        return _BUSY

    async def give_back(self, lease: Lease, *, number: bool = True, counters: bool = True) -> None:
        """Undo the lease's take: its number and the patient's counters, unless the ledger
        holds them (the number for someone else, or this patient's booking here)."""
        call = self.give_back_call(
            lease.slot, lease.free, lease.req.request_id, number=number, counters=counters
        )
        await self.submit(call)
        self._wake(lease.req.schedule.id)

    async def _until_settled(self, schedule_id: int, at_most: float) -> None:
        """Wait until a lease of this schedule settles here, or `at_most` seconds (other
        processes settle leases too, unannounced)."""
        with self._settled.use(schedule_id) as settled, contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await settled.wait()

    def _wake(self, schedule_id: int) -> None:
        settled = self._settled.detach(schedule_id)
        if settled is not None:
            settled.set()

    async def _give_back_quietly(self, lease: Lease) -> None:
        try:
            await self.give_back(lease)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("%s: lease left to the reconcilers: %r", self.name, exc)

    async def _cancel(self, booking: Booking) -> Booking | None:
        async with self.stores.pg.acquire() as conn, conn.transaction():
            await ledger.lock_patient_day(conn, booking)
            cancelled = await ledger.cancel_booking(conn, booking.id)
        if cancelled is not None:
            await self._release(cancelled)
        return cancelled

    async def _release(self, booking: Booking) -> None:
        slot = self.slot_keys(slot_tag(booking.hospital_id, booking.visit_date))
        keys = [slot.slot, slot.schedules, slot.free(booking.schedule_id)]
        if self.rules_in_redis:
            keys.append(slot.counters)
        args = (
            booking.schedule_id,
            booking.number,
            booking.patient_id,
            booking.department_id,
            self.free_store,
        )
        call = ScriptCall(RELEASE, (len(keys), *keys, *args))
        try:
            await self.submit(call)
        except (redis.exceptions.RedisError, OSError) as exc:
            # The ledger has cancelled: the cancel stands, Redis catches up (release.lua is
            # safe to resend).
            log.warning("%s: release of booking %s deferred: %r", self.name, booking.id, exc)
            self._batches.release_later(call)
        else:
            self._wake(booking.schedule_id)

    async def schedules_created(self, schedules: Sequence[Schedule]) -> None:
        try:
            await self.loader.add_new_schedules(schedules)
        except STORE_FAILURES as exc:
            # A slot missing a schedule loads it from the ledger at its first booking.
            log.warning("%s: new schedules left to lazy loading: %r", self.name, exc)

    # --- round trips and keys ------------------------------------------------------------

    def submit(self, call: ScriptCall) -> Awaitable[Any]:
        return self._batches.submit(call)

    async def flush(self) -> None:
        """Send the confirmations and releases that are waiting, now."""
        await self._batches.flush()

    def slot_keys(self, tag: str) -> SlotKeys:
        slot = self._slots.get(tag)
        if slot is None:
            slot = self.keys.slot(tag)
            self._slots.put(tag, slot)
        return slot

    def _keys_of(self, schedule: Schedule) -> tuple[SlotKeys, str]:
        found = self._schedule_keys.get(schedule.id)
        if found is None:
            slot = self.slot_keys(slot_tag(schedule.hospital_id, schedule.visit_date))
            found = (slot, slot.free(schedule.id))
            self._schedule_keys.put(schedule.id, found)
        return found

    def give_back_call(
        self,
        slot: SlotKeys,
        free: str,
        request_id: str,
        *,
        number: bool = True,
        counters: bool = True,
    ) -> ScriptCall:
        keys = [free, slot.leases, slot.lease_records, slot.in_flight]
        if self.rules_in_redis and counters:
            keys.append(slot.counters)
        store = self.free_store if number else ""
        return ScriptCall(GIVE_BACK, (len(keys), *keys, request_id, store))
