"""Settling the leases their writers never settled (a crash, a lost connection).

Every process runs one reconciler. A lease past its deadline and a grace period either has
its row in the ledger (confirm) or never will, since the ledger only writes rows before the
deadline (give the number back). Both are atomic and idempotent in Redis, so reconcilers of
several processes may settle the same lease at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.keys import SlotKeys
from core.metrics import RECONCILER_ACTIONS
from core.queries import query as q
from core.redis_scripts import ScriptCall
from strategies.redis_gate.coalescing import confirm_call
from strategies.redis_gate.lease import epoch_ms
from strategies.redis_gate.replies import text

if TYPE_CHECKING:
    from strategies.redis_gate.gate import RedisGate

log = logging.getLogger("slotrush.redis")

# Covers clock skew between hosts and a ledger statement that passed its deadline check just
# before the deadline: only then is a lease's missing row surely never coming.
GRACE_SECONDS = 1.0


class Reconciler:
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
        # began and were settled just now (see ScriptBatches.announce).
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
                confirms.append(confirm_call(slot, [request_id]))
            else:
                schedule_id = record.decode().partition("|")[0]
                give_backs.append(gate.give_back_call(slot, slot.free(schedule_id), request_id))
        results = await gate.runner.run([*confirms, *give_backs])
        self._confirmed.inc(len(written))
        self._given_back.inc(sum(1 for r in results[len(confirms) :] if r == 1))
