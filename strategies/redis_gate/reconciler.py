"""Settling what the writers and the attempts after a commit left undone (a crash, a lost
connection, Redis or PostgreSQL away for a while).

Every process runs one reconciler. Each pass drains the outbox (see outbox), then looks at
the leases past their deadline: it claims each one 'abandoned' (see fence), and whatever
the claim says then is final. Won, or abandoned before: give the number back. Written: the
row is there, confirm; or a rule of the ledger refused it, give back what the ledger does
not hold. Settling is atomic and idempotent in Redis, so reconcilers of several processes
may settle the same lease at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.keys import SlotKeys
from core.metrics import RECONCILER_ACTIONS
from core.redis_scripts import ScriptCall
from strategies.redis_gate import fence
from strategies.redis_gate.lease import Written, epoch_ms
from strategies.redis_gate.outbox import APPLY_FAILURES
from strategies.redis_gate.replies import text

if TYPE_CHECKING:
    from strategies.redis_gate.gate import RedisGate

log = logging.getLogger("slotrush.redis")

# A lease's claim outlives the lease by this much before it is forgotten: no write can still
# be on its way after so long (PostgreSQL's statements time out far sooner).
CLAIMS_KEPT_SECONDS = 3600.0
_PRUNE_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Expired:
    """A lease past its deadline, with its record ("schedule|number|patient|department|
    request id"), or None when only the deadline was left."""

    slot: SlotKeys
    lease_id: str
    record: str | None

    @property
    def fields(self) -> list[str]:
        return (self.record or "").split("|")

    def give_back(
        self, gate: RedisGate, *, number: bool = True, counters: bool = True
    ) -> ScriptCall:
        free = self.slot.free(self.fields[0])
        return gate.give_back_call(self.slot, free, self.lease_id, number=number, counters=counters)


class Reconciler:
    def __init__(self, gate: RedisGate) -> None:
        self._gate = gate
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._prune_at = 0.0
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
        try:
            await gate.outbox.drain()
        except APPLY_FAILURES as exc:
            # Leases are settled all the same: they need Redis and PostgreSQL, not this.
            log.warning("%s: outbox left for the next pass: %r", gate.name, exc)
        now_ms = epoch_ms()
        pending_slots = gate.keys.pending_slots
        tags = [text(tag) for tag in await gate.stores.redis.zrange(pending_slots, 0, -1)]
        expired = await self._expired_leases(tags, now_ms)
        if expired:
            await self._settle(expired)
        # A slot announced this long ago has only leases that expired before this pass
        # began and were settled just now (see ScriptBatches.announce).
        await gate.stores.redis.zremrangebyscore(pending_slots, "-inf", now_ms - 2 * gate.lease_ms)
        if time.monotonic() >= self._prune_at:
            self._prune_at = time.monotonic() + _PRUNE_EVERY_SECONDS
            await fence.prune(gate.stores.pg, gate.settings.lease_seconds + CLAIMS_KEPT_SECONDS)

    async def _expired_leases(self, tags: Sequence[str], cutoff_ms: int) -> list[_Expired]:
        """Every lease whose deadline is before cutoff, with its record."""
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
            _Expired(slot, lease_id.decode(), record.decode() if record is not None else None)
            for (slot, ids), slot_records in zip(expired, records, strict=True)
            for lease_id, record in zip(ids, slot_records, strict=True)
        ]

    async def _settle(self, expired: Sequence[_Expired]) -> None:
        gate, pg = self._gate, self._gate.stores.pg
        keys = [(e.slot.hospital_id, e.lease_id) for e in expired if e.record is not None]
        if keys:
            await fence.abandon(pg, keys)
        ended = await fence.outcomes(pg, keys) if keys else {}
        confirms: list[ScriptCall] = []
        give_backs: list[ScriptCall] = []
        for lease in expired:
            outcome = ended.get(lease.lease_id)
            if lease.record is None or (outcome is not None and outcome.booking is not None):
                # Written, or a deadline left without its record: nothing to give back.
                confirms.append(gate.confirm_call(lease.slot, [Written(lease.lease_id)]))
            elif outcome is not None and outcome.abandoned:
                give_backs.append(lease.give_back(gate))
            elif outcome is not None:
                give_backs.append(await self._refused(lease))
        results = await gate.runner.run([*confirms, *give_backs])
        self._confirmed.inc(sum(1 for r in results[: len(confirms)] if r == 1))
        self._given_back.inc(sum(1 for r in results[len(confirms) :] if r == 1))

    async def _refused(self, lease: _Expired) -> ScriptCall:
        """A lease written but whose row the ledger refused, its writer gone before settling
        it: give back what the ledger does not hold."""
        schedule_id, number, patient_id, _, _ = lease.fields
        refusal = await fence.refusal(
            self._gate.stores.pg,
            hospital_id=lease.slot.hospital_id,
            schedule_id=int(schedule_id),
            number=int(number),
            patient_id=patient_id,
        )
        return lease.give_back(
            self._gate, number=not refusal.number_held, counters=not refusal.patient_active
        )
