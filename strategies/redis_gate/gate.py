"""The gate: Redis decides fast, the ledger records.

A booking takes a number under a lease, writes its row under the lease's claim (see fence)
and settles the lease: confirmed once written, given back once the claim says it never will
be. A write whose outcome is unknown (its reply lost) is resolved from that claim, never
guessed. A transition that frees a number owes Redis a release, and a suspension owes it the
schedule's closing, each recorded with it in the ledger (see outbox).
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

import asyncpg

from core import ledger
from core.domain import Booking, BookingRequest, BookResult, Code, Rejected, Resize, Schedule
from core.failures import STORE_FAILURES
from core.keyed import InUse, LruCache
from core.keys import KeySpace, SlotKeys, slot_tag
from core.lifecycle.cancellation import cancel_by_patient
from core.metrics import BUSY_RETRIES
from core.redis_scripts import GIVE_BACK, ScriptCall, ScriptRunner
from core.stores import Stores
from strategies.base import InventoryStrategy
from strategies.redis_gate import fence
from strategies.redis_gate.coalescing import ScriptBatches, confirm_call
from strategies.redis_gate.lease import Lease, Written, epoch_ms, new_lease_id
from strategies.redis_gate.loader import SlotLoader
from strategies.redis_gate.outbox import APPLY_FAILURES, Outbox
from strategies.redis_gate.reconciler import Reconciler
from strategies.redis_gate.replies import text

log = logging.getLogger("slotrush.redis")

# Answers of take.lua and admit.lua besides a number (>= 1).
NOT_LOADED = 0
REFUSALS: dict[int, Rejected] = {
    -1: Rejected(Code.BLACKLISTED),
    -2: Rejected(Code.ALREADY_BOOKED),
    -3: Rejected(Code.DAILY_LIMIT),
    -4: Rejected(Code.DEPARTMENT_LIMIT),
    -5: Rejected(Code.SOLD_OUT),
    -8: Rejected(Code.SCHEDULE_CLOSED),
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

    # Whether Redis keeps the rules, the blacklist and patient counters (checked at the take).
    rules_in_redis: ClassVar[bool]

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self.keys = KeySpace(self.settings.redis_prefix, self.name)
        self.runner = ScriptRunner(
            stores.redis, replica_wait_ms=stores.settings.redis_replica_wait_ms
        )
        self.lease_ms = round(self.settings.lease_seconds * 1000)
        self._batches = ScriptBatches(
            self.runner, self.keys, self.settings.lease_seconds, self.confirm_call
        )
        self._slots: LruCache[str, SlotKeys] = LruCache(_KEY_CACHE_LIMIT)
        self._schedule_keys: LruCache[int, tuple[SlotKeys, str]] = LruCache(_KEY_CACHE_LIMIT)
        # Takers waiting for numbers out on leases, woken when one of ours settles.
        self._settled: InUse[int, asyncio.Event] = InUse(asyncio.Event)
        self._diverged = BUSY_RETRIES.labels(self.name, "redis_diverged")
        self.loader = SlotLoader(self)
        self.outbox = Outbox(self)
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
        self,
        req: BookingRequest,
        slot: SlotKeys,
        free: str,
        now_ms: int,
        deadline_ms: int,
        lease_id: str,
    ) -> ScriptCall:
        """The script call that takes a number for `req` under a new lease (answers as
        take.lua does)."""

    @abstractmethod
    async def _write(self, lease: Lease) -> Booking | Rejected | None:
        """Write the lease's booking to the ledger under its claim (ledger.insert_bookings).

        Returns the booking, a rule's rejection found in the ledger before writing, or None
        when the row was not written (the claim was taken, or a rule refused the row).
        """

    # --- booking and cancelling -------------------------------------------------------

    async def _book(self, req: BookingRequest) -> BookResult:
        for _ in range(_TAKES_PER_BOOKING):
            lease = await self.take(req)
            if isinstance(lease, Rejected):
                return lease
            try:
                written = await self._write(lease)
            except STORE_FAILURES:
                # The commit may have landed and only its reply been lost: ask the ledger.
                settled = await self._settle(lease, None)
                if settled == _BUSY:
                    raise  # not written: the failure is the answer
            else:
                if isinstance(written, Booking):
                    return self._written(lease, written)
                settled = await self._settle(lease, written)
            if settled is not None:
                return settled
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
            call = self._take_call(req, slot, free, now_ms, now_ms + self.lease_ms, new_lease_id())
            answer = await self.submit(call)
            if isinstance(answer, list):
                number, lease_id = answer
                return Lease(req, number, text(lease_id), slot, free)
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

    def _written(self, lease: Lease, booking: Booking) -> Booking:
        self._batches.confirm_later(lease)
        self.wake(lease.req.schedule.id)
        return booking

    async def _settle(self, lease: Lease, refused: Rejected | None) -> BookResult | None:
        """Settle a lease whose write did not answer its booking, from its claim in the
        ledger: a write that landed is kept, anything else gives back what the ledger does
        not hold. Returns the answer, or None to take another number.

        `refused` is the rule the write found broken before trying (redis-queue). A
        PostgreSQL that cannot be reached raises: the lease is then the reconcilers'.
        """
        key = (lease.req.schedule.hospital_id, lease.id)
        if lease.id in await fence.abandon(self.stores.pg, [key]):
            await self.give_back(lease)
            return refused or _BUSY
        outcome = (await fence.outcomes(self.stores.pg, [key]))[lease.id]
        if outcome.booking is not None:
            return self._written(lease, outcome.booking)
        if outcome.abandoned:
            # Given back by a reconciler while the write was late (or about to be).
            await self.give_back(lease)
            return refused or _BUSY
        return await self._settle_refusal(lease)

    async def _settle_refusal(self, lease: Lease) -> Rejected | None:
        """The write claimed the lease but a rule of the ledger refused its row: give back
        what the ledger does not hold, and answer why.

        Returns None when Redis offered a number the ledger holds: a sign that Redis lost
        state or missed a write. That number stays out of Redis; take another.
        """
        req, schedule = lease.req, lease.req.schedule
        refusal = await fence.refusal(
            self.stores.pg,
            hospital_id=schedule.hospital_id,
            schedule_id=schedule.id,
            number=lease.number,
            patient_id=req.patient_id,
            idempotency_key=req.idempotency_key,
        )
        await self.give_back(
            lease,
            number=not (refusal.number_held or refusal.number_gone),
            counters=not refusal.patient_active,
        )
        if refusal.suspended:
            return Rejected(Code.SCHEDULE_CLOSED)
        if refusal.blacklisted:
            return Rejected(Code.BLACKLISTED)
        if refusal.key_used:
            return Rejected(Code.IDEMPOTENCY_CONFLICT)
        if refusal.patient_active:
            return Rejected(Code.ALREADY_BOOKED)
        if refusal.number_held:
            self._diverged.inc()
            return None
        if refusal.number_gone:
            # Offered before its resize reached Redis: it stays out; take another.
            return None
        # Whatever refused the row is gone again (a booking cancelled meanwhile).
        return _BUSY

    async def give_back(self, lease: Lease, *, number: bool = True, counters: bool = True) -> None:
        """Undo the lease's take: its number and the patient's counters, unless the ledger
        holds them (the number for someone else, or this patient's booking here). Only once
        its claim is settled as not written."""
        call = self.give_back_call(
            lease.slot, lease.free, lease.id, number=number, counters=counters
        )
        await self.submit(call)
        self.wake(lease.req.schedule.id)

    async def _until_settled(self, schedule_id: int, at_most: float) -> None:
        """Wait until a lease of this schedule settles here, or `at_most` seconds (other
        processes settle leases too, unannounced)."""
        with self._settled.use(schedule_id) as settled, contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await settled.wait()

    def wake(self, schedule_id: int) -> None:
        """Tell takers waiting on this schedule that a lease settled or a number came back."""
        settled = self._settled.detach(schedule_id)
        if settled is not None:
            settled.set()

    async def _cancel(self, booking: Booking) -> Booking | None:
        async with self.stores.pg.acquire() as conn, conn.transaction():
            await ledger.lock_patient_day(conn, booking)
            return await cancel_by_patient(conn, self, booking)

    async def numbers_freeing(self, conn: asyncpg.Connection, bookings: Sequence[Booking]) -> None:
        await self.outbox.owe_releases(conn, bookings)

    async def numbers_freed(self, bookings: Sequence[Booking]) -> None:
        try:
            await self.outbox.release(bookings)
        except APPLY_FAILURES as exc:
            log.warning("%s: releases left to the reconcilers: %r", self.name, exc)

    async def schedule_suspending(self, conn: asyncpg.Connection, schedule: Schedule) -> None:
        await self.outbox.owe_closure(conn, schedule)

    async def schedule_suspended(self, schedule: Schedule) -> None:
        try:
            await self.outbox.close(schedule)
        except APPLY_FAILURES as exc:
            log.warning("%s: closure left to the reconcilers: %r", self.name, exc)

    async def capacity_changing(self, conn: asyncpg.Connection, resizes: Sequence[Resize]) -> None:
        await self.outbox.owe_resizes(conn, resizes)

    async def capacity_changed(self, resizes: Sequence[Resize]) -> None:
        try:
            await self.outbox.resize(resizes)
        except APPLY_FAILURES as exc:
            log.warning("%s: capacity changes left to the reconcilers: %r", self.name, exc)

    async def config_changing(self, conn: asyncpg.Connection, hospital_id: str) -> None:
        if self.rules_in_redis:
            await self.outbox.owe_config_sync(conn, hospital_id)

    async def config_changed(self, hospital_id: str) -> None:
        if not self.rules_in_redis:
            return
        try:
            await self.outbox.sync_config(hospital_id)
        except APPLY_FAILURES as exc:
            log.warning("%s: config sync left to the reconcilers: %r", self.name, exc)

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
        """Send the confirmations that are waiting, now."""
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

    def confirm_call(self, slot: SlotKeys, leases: Sequence[Written]) -> ScriptCall:
        return confirm_call(slot, leases, self.rules_in_redis)

    def give_back_call(
        self,
        slot: SlotKeys,
        free: str,
        lease_id: str,
        *,
        number: bool = True,
        counters: bool = True,
    ) -> ScriptCall:
        keys = [free, slot.leases, slot.lease_records, slot.in_flight, slot.lease_requests]
        if self.rules_in_redis and counters:
            keys.append(slot.counters)
        return ScriptCall(GIVE_BACK, (len(keys), *keys, lease_id, "1" if number else "0"))
