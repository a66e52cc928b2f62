"""What redis-lua and redis-queue share: a Redis gate in front of the Postgres ledger.

A booking takes a number in Redis under a lease (a deadline recorded beside it), writes the
ledger row before the deadline, then settles the lease. Everything that is not the take
itself lives here: coalescing script calls into pipelined round trips, giving numbers back,
loading a slot's state from the ledger when Redis does not have it, and the reconciler that
settles the leases of writers that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import math
import time
from abc import abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg
import redis.exceptions

from core import ledger
from core.batching import Coalescer
from core.domain import Booking, BookingRequest, BookResult, Code, Rejected, Schedule
from core.failures import STORE_FAILURES
from core.keys import KeySpace, SlotKeys, slot_tag
from core.metrics import BUSY_RETRIES, RECONCILER_ACTIONS
from core.queries import query as q
from core.redis_scripts import CONFIRM, GIVE_BACK, LOAD, RELEASE, ScriptCall, ScriptRunner
from core.stores import Stores
from strategies.base import InventoryStrategy

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

# Covers clock skew between hosts and a ledger statement that passed its deadline check just
# before the deadline: only then is a lease's missing row surely never coming.
GRACE_SECONDS = 1.0
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
# Keeps one Lua call's unpack() far below its limit.
_CONFIRM_CHUNK = 1000
# Blacklist and rule copies are kept for dates from yesterday on (time zones differ).
_PAST_DAYS_KEPT = 1


def epoch_ms() -> int:
    return int(time.time() * 1000)


def text(reply: Any) -> str:
    """A Redis reply as text (the shared client answers bytes)."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


@dataclass(frozen=True, slots=True)
class Lease:
    """A number taken in Redis for one request; its ledger row is due before the deadline."""

    req: BookingRequest
    number: int
    deadline_ms: int
    slot: SlotKeys
    free: str


class RedisGate(InventoryStrategy):
    """Redis decides fast, the ledger records; subclasses supply the take and the write."""

    # How the scripts keep free numbers: "zset" or "list".
    free_store: ClassVar[str]
    # Whether Redis keeps the rules, the blacklist and patient counters (checked at the take).
    rules_in_redis: ClassVar[bool]

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self.keys = KeySpace(self.settings.redis_prefix, self.name)
        self.runner = ScriptRunner(stores.redis)
        self.lease_ms = round(self.settings.lease_seconds * 1000)
        self._scripts: Coalescer[ScriptCall, Any] = Coalescer(self._run_batch, max_in_flight=3)
        # Leases whose rows are in the ledger: confirmed with the next round trip to Redis.
        self._written: list[Lease] = []
        # Releases of cancelled numbers that Redis did not take; the reconciler resends them.
        self._unreleased: list[ScriptCall] = []
        # Slots this process has recently told the reconcilers about (see _announce).
        self._announced: dict[str, float] = {}
        self._announcements: set[str] = set()
        self._slots: dict[str, SlotKeys] = {}
        self._schedule_keys: dict[int, tuple[SlotKeys, str]] = {}
        # Takers waiting for numbers out on leases, woken when one of ours settles.
        self._settled: dict[int, asyncio.Event] = {}
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
                self._written.append(lease)
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
        self._announce(slot.tag)
        loads = 0
        pause = _FIRST_PAUSE
        patience_ends = math.inf
        while True:
            now_ms = epoch_ms()
            deadline_ms = now_ms + self.lease_ms
            answer = await self._scripts.submit(
                self._take_call(req, slot, free, now_ms, deadline_ms)
            )
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
        cause = await self.stores.pg.fetchrow(
            q("redis_refusal_cause"),
            schedule.id,
            lease.number,
            req.patient_id,
            req.idempotency_key,
        )
        assert cause is not None
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
        await self._scripts.submit(call)
        self._wake(lease.req.schedule.id)

    async def _until_settled(self, schedule_id: int, at_most: float) -> None:
        """Wait until a lease of this schedule settles here, or `at_most` seconds (other
        processes settle leases too, unannounced)."""
        settled = self._settled.setdefault(schedule_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await settled.wait()

    def _wake(self, schedule_id: int) -> None:
        settled = self._settled.pop(schedule_id, None)
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
            await self._scripts.submit(call)
        except (redis.exceptions.RedisError, OSError) as exc:
            # The ledger has cancelled: the cancel stands, Redis catches up (release.lua is
            # safe to resend).
            log.warning("%s: release of booking %s deferred: %r", self.name, booking.id, exc)
            self._unreleased.append(call)
        else:
            self._wake(booking.schedule_id)

    # --- hooks ---------------------------------------------------------------------------

    async def schedules_created(self, schedules: Sequence[Schedule]) -> None:
        try:
            await self.loader.add_new_schedules(schedules)
        except STORE_FAILURES as exc:
            # A slot missing a schedule loads it from the ledger at its first booking.
            log.warning("%s: new schedules left to lazy loading: %r", self.name, exc)

    async def update_loaded_slots(
        self, hospital_id: str, call_for: Callable[[SlotKeys], ScriptCall]
    ) -> None:
        """Run one call per loaded slot of the hospital from yesterday on."""
        dates = await self.stores.redis.smembers(self.keys.loaded_dates(hospital_id))
        first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=_PAST_DAYS_KEPT)
        slots = [
            self.slot_keys(slot_tag(hospital_id, day))
            for day in (dt.date.fromisoformat(text(d)) for d in dates)
            if day >= first
        ]
        await asyncio.gather(*(self._scripts.submit(call_for(slot)) for slot in slots))

    # --- coalesced round trips -----------------------------------------------------------

    def _announce(self, tag: str) -> None:
        """Make sure the reconcilers look at this slot while leases may be there.

        Refreshed every quarter lease: `Reconciler.run_once` forgets a slot only two
        leases after its last refresh, when every lease taken before it has expired.
        """
        now = time.monotonic()
        if now - self._announced.get(tag, -math.inf) > self.settings.lease_seconds / 4:
            self._announced[tag] = now
            self._announcements.add(tag)

    async def _run_batch(self, calls: Sequence[ScriptCall]) -> list[Any]:
        confirms = self._confirm_calls()
        tags, self._announcements = self._announcements, set()
        prelude: list[tuple[Any, ...]] = []
        if tags:
            now_ms = epoch_ms()
            scored = itertools.chain.from_iterable((now_ms, tag) for tag in tags)
            prelude.append(("ZADD", self.keys.pending_slots, *scored))
        try:
            results = await self.runner.run([*confirms, *calls], prelude)
        except BaseException:
            self._announcements |= tags
            raise
        return results[len(confirms) :]

    def _confirm_calls(self) -> list[ScriptCall]:
        written, self._written = self._written, []
        by_slot: defaultdict[str, list[str]] = defaultdict(list)
        slots: dict[str, SlotKeys] = {}
        for lease in written:
            by_slot[lease.slot.tag].append(lease.req.request_id)
            slots[lease.slot.tag] = lease.slot
        return [
            _confirm_call(slots[tag], ids[start : start + _CONFIRM_CHUNK])
            for tag, ids in by_slot.items()
            for start in range(0, len(ids), _CONFIRM_CHUNK)
        ]

    async def flush(self) -> None:
        """Send the confirmations and releases that are waiting, now."""
        confirms = self._confirm_calls()
        unreleased, self._unreleased = self._unreleased, []
        if not confirms and not unreleased:
            return
        try:
            await self.runner.run([*confirms, *unreleased])
        except BaseException:
            self._unreleased.extend(unreleased)
            raise

    # --- keys ----------------------------------------------------------------------------

    def slot_keys(self, tag: str) -> SlotKeys:
        slot = self._slots.get(tag)
        if slot is None:
            slot = self._slots[tag] = self.keys.slot(tag)
        return slot

    def _keys_of(self, schedule: Schedule) -> tuple[SlotKeys, str]:
        found = self._schedule_keys.get(schedule.id)
        if found is None:
            slot = self.slot_keys(slot_tag(schedule.hospital_id, schedule.visit_date))
            found = (slot, slot.free(schedule.id))
            if len(self._schedule_keys) >= _KEY_CACHE_LIMIT:
                self._schedule_keys.clear()
            self._schedule_keys[schedule.id] = found
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

    async def submit(self, call: ScriptCall) -> Any:
        return await self._scripts.submit(call)


def _confirm_call(slot: SlotKeys, request_ids: Sequence[str]) -> ScriptCall:
    return ScriptCall(CONFIRM, (3, slot.leases, slot.lease_records, slot.in_flight, *request_ids))


class SlotLoader:
    """Loads a slot's Redis state from the ledger, the first time a script finds it missing
    (a fresh Redis, a restarted one, deleted keys): Redis state is always derived."""

    def __init__(self, gate: RedisGate) -> None:
        self._gate = gate
        # One load per slot at a time in this process, so a crowd hitting an unloaded slot
        # reads the ledger once; the load script itself copes with other processes.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._loads: Counter[str] = Counter()
        self._rebuilt = RECONCILER_ACTIONS.labels(gate.name, "rebuilt")

    async def load(self, hospital_id: str, visit_date: dt.date) -> None:
        tag = slot_tag(hospital_id, visit_date)
        seen = self._loads[tag]
        async with self._locks[tag]:
            if self._loads[tag] != seen:
                return  # loaded while this caller waited for the lock
            call = await self._snapshot(self._gate.slot_keys(tag), hospital_id, visit_date)
            if self._gate.rules_in_redis:
                await self._gate.stores.redis.sadd(
                    self._gate.keys.loaded_dates(hospital_id), visit_date.isoformat()
                )
            loaded, _ = await self._gate.submit(call)
            self._loads[tag] += 1
        if loaded:
            self._rebuilt.inc()

    async def add_new_schedules(self, schedules: Sequence[Schedule]) -> None:
        """Add just-created schedules (every number free) to the slots already loaded."""
        by_slot: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
        for s in schedules:
            by_slot[slot_tag(s.hospital_id, s.visit_date)].append((s.id, f"1-{s.capacity}"))
        await asyncio.gather(
            *(
                self._gate.submit(self._load_call(self._gate.slot_keys(tag), items, True))
                for tag, items in by_slot.items()
            )
        )

    async def _snapshot(self, slot: SlotKeys, hospital_id: str, visit_date: dt.date) -> ScriptCall:
        """The load call for one slot, from one consistent snapshot of the ledger."""
        async with (
            self._gate.stores.pg.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            schedules = [
                (r["id"], r["free"])
                for r in await conn.fetch(q("redis_slot_free_numbers"), hospital_id, visit_date)
            ]
            if not self._gate.rules_in_redis:
                return self._load_call(slot, schedules, False)
            rules = await conn.fetchrow(q("redis_slot_rules"), hospital_id)
            blacklist = await conn.fetch(q("redis_slot_blacklist"), hospital_id)
            bookings = await conn.fetch(q("redis_slot_bookings"), hospital_id, visit_date)
        assert rules is not None
        return self._load_call(
            slot,
            schedules,
            False,
            rules=(rules["max_per_day"], rules["max_per_department_per_day"]),
            counters=patient_counters(bookings),
            blacklist=[(r["patient_id"], r["until_ms"]) for r in blacklist],
        )

    def _load_call(
        self,
        slot: SlotKeys,
        schedules: Sequence[tuple[int, str]],
        only_if_loaded: bool,
        *,
        rules: tuple[int, int] | None = None,
        counters: Counter[str] | None = None,
        blacklist: Sequence[tuple[str, int]] = (),
    ) -> ScriptCall:
        counters = counters or Counter()
        keys = [
            slot.slot,
            slot.schedules,
            slot.blacklist,
            slot.counters,
            slot.leases,
            slot.lease_records,
            slot.in_flight,
            *(slot.free(schedule_id) for schedule_id, _ in schedules),
        ]
        args = [
            "1" if only_if_loaded else "0",
            self._gate.free_store,
            *(rules or ("", "")),
            len(schedules),
            len(counters),
            len(blacklist),
            *(schedule_id for schedule_id, _ in schedules),
            *(free for _, free in schedules),
            *itertools.chain.from_iterable(counters.items()),
            *itertools.chain.from_iterable(blacklist),
        ]
        return ScriptCall(LOAD, (len(keys), *keys, *args))


def patient_counters(bookings: Iterable[asyncpg.Record]) -> Counter[str]:
    """Active bookings as the fields of a slot's counters hash (see take.lua)."""
    counts: Counter[str] = Counter()
    for b in bookings:
        patient = b["patient_id"]
        counts[f"{patient}:day"] += 1
        counts[f"{patient}:d:{b['department_id']}"] += 1
        counts[f"{patient}:s:{b['schedule_id']}"] = 1
    return counts


class Reconciler:
    """Settles the leases their writers never settled (a crash, a lost connection).

    Every process runs one. A lease past its deadline and a grace period either has its row
    in the ledger (confirm) or never will, since the ledger only writes rows before the
    deadline (give the number back). Both are atomic and idempotent in Redis, so reconcilers
    of several processes may settle the same lease at once.
    """

    def __init__(self, gate: RedisGate) -> None:
        self._gate = gate
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._confirmed = RECONCILER_ACTIONS.labels(gate.name, "confirmed")
        self._given_back = RECONCILER_ACTIONS.labels(gate.name, "given_back")

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(
                self._run_forever(), name=f"{self._gate.name} reconciler"
            )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            # Cancelling alone is not enough: on Python 3.11, asyncio.wait_for (inside
            # redis-py) can swallow a cancellation, or it surfaces as a connection error.
            self._stopping = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._gate.settings.reconcile_interval)
            if self._stopping:
                return
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("%s: reconcile pass failed: %r", self._gate.name, exc)

    async def run_once(self) -> None:
        gate = self._gate
        await gate.flush()
        now_ms = epoch_ms()
        grace_ms = round(GRACE_SECONDS * 1000)
        pending_slots = gate.keys.pending_slots
        tags = [text(tag) for tag in await gate.stores.redis.zrange(pending_slots, 0, -1)]
        expired = await self._expired_leases(tags, now_ms - grace_ms)
        if expired:
            await self._settle(expired)
        # A slot announced this long ago has only leases that expired before this pass
        # began and were settled just now (see RedisGate._announce).
        await gate.stores.redis.zremrangebyscore(
            pending_slots, "-inf", now_ms - 2 * (gate.lease_ms + grace_ms)
        )

    async def _expired_leases(
        self, tags: Sequence[str], cutoff_ms: int
    ) -> list[tuple[SlotKeys, str, bytes | None]]:
        """(slot, request id, lease record) of every lease whose deadline is before cutoff."""
        if not tags:
            return []
        slots = [self._gate.slot_keys(tag) for tag in tags]
        pipe = self._gate.stores.redis.pipeline(transaction=False)
        for slot in slots:
            pipe.zrangebyscore(slot.leases, "-inf", cutoff_ms)
        expired = [
            (slot, ids) for slot, ids in zip(slots, await pipe.execute(), strict=True) if ids
        ]
        if not expired:
            return []
        for slot, ids in expired:
            pipe.hmget(slot.lease_records, ids)
        records = await pipe.execute()
        return [
            (slot, request_id.decode(), record)
            for (slot, ids), slot_records in zip(expired, records, strict=True)
            for request_id, record in zip(ids, slot_records, strict=True)
        ]

    async def _settle(self, expired: Sequence[tuple[SlotKeys, str, bytes | None]]) -> None:
        gate = self._gate
        rows = await gate.stores.pg.fetch(
            q("redis_written_requests"), [request_id for _, request_id, _ in expired]
        )
        written = {row["request_id"] for row in rows}
        confirms: list[ScriptCall] = []
        give_backs: list[ScriptCall] = []
        for slot, request_id, record in expired:
            if request_id in written or record is None:
                confirms.append(_confirm_call(slot, [request_id]))
            else:
                schedule_id = record.decode().partition("|")[0]
                give_backs.append(gate.give_back_call(slot, slot.free(schedule_id), request_id))
        results = await gate.runner.run([*confirms, *give_backs])
        self._confirmed.inc(len(written))
        self._given_back.inc(sum(1 for r in results[len(confirms) :] if r == 1))
