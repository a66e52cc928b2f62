"""Script calls of concurrent requests, coalesced into pipelined round trips to Redis.

Whatever need not be answered at once rides along with the next batch instead of costing a
round trip of its own: the confirmations of leases whose rows are in the ledger, and the
announcements that tell the reconcilers where leases may be.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from core.batching import Coalescer
from core.keyed import LruCache
from core.keys import KeySpace, SlotKeys
from core.redis_scripts import CONFIRM, ScriptCall, ScriptRunner
from strategies.redis_gate.lease import Lease, Written, epoch_ms

# Keeps one Lua call's unpack() far below its limit.
_CONFIRM_CHUNK = 1000
# Slots whose last announcement is remembered; one forgotten is only announced again.
_ANNOUNCED_KEPT = 100_000


def confirm_call(slot: SlotKeys, leases: Sequence[Written], counters: bool) -> ScriptCall:
    """Settle these leases, whose rows are in the ledger (see confirm.lua)."""
    keys = [
        slot.leases,
        slot.lease_records,
        slot.in_flight,
        slot.lease_requests,
        slot.slot,
        slot.schedules,
        slot.released,
        slot.counters,
    ]
    free_keys: dict[str, int] = {}
    args: list[str] = ["1" if counters else "0"]
    for lease in leases:
        index = 0
        if lease.schedule_id:
            index = free_keys.setdefault(lease.schedule_id, len(keys) + len(free_keys) + 1)
        args += [*lease, str(index)]
    keys += [slot.free(schedule_id) for schedule_id in free_keys]
    return ScriptCall(CONFIRM, (len(keys), *keys, *args))


class ScriptBatches:
    def __init__(
        self,
        runner: ScriptRunner,
        keys: KeySpace,
        lease_seconds: float,
        confirm: Callable[[SlotKeys, Sequence[Written]], ScriptCall],
    ) -> None:
        self._runner = runner
        self._keys = keys
        self._confirm = confirm
        self._announce_every = lease_seconds / 4
        self._scripts: Coalescer[ScriptCall, Any] = Coalescer(self._run_batch, max_in_flight=3)
        # Leases whose rows are in the ledger: confirmed with the next round trip to Redis.
        self._written: list[Lease] = []
        # Slots this process has recently told the reconcilers about (see announce).
        self._announced: LruCache[str, float] = LruCache(_ANNOUNCED_KEPT)
        self._announcements: set[str] = set()

    def submit(self, call: ScriptCall) -> Awaitable[Any]:
        """The call's answer, from a round trip shared with the calls made meanwhile."""
        return self._scripts.submit(call)

    def confirm_later(self, lease: Lease) -> None:
        self._written.append(lease)

    def announce(self, tag: str) -> None:
        """Make sure the reconcilers look at this slot while leases may be there.

        Refreshed every quarter lease: `Reconciler.run_once` forgets a slot only two
        leases after its last refresh, when every lease taken before it has expired.
        """
        now = time.monotonic()
        last = self._announced.get(tag)
        if last is None or now - last > self._announce_every:
            self._announced.put(tag, now)
            self._announcements.add(tag)

    async def flush(self) -> None:
        """Send the confirmations that are waiting, now (a lost one is the reconcilers')."""
        confirms = self._confirm_calls()
        if confirms:
            await self._runner.run(confirms)

    async def _run_batch(self, calls: Sequence[ScriptCall]) -> list[Any]:
        confirms = self._confirm_calls()
        tags, self._announcements = self._announcements, set()
        prelude: list[tuple[Any, ...]] = []
        if tags:
            now_ms = epoch_ms()
            scored = itertools.chain.from_iterable((now_ms, tag) for tag in tags)
            prelude.append(("ZADD", self._keys.pending_slots, *scored))
        try:
            results = await self._runner.run([*confirms, *calls], prelude)
        except BaseException:
            self._announcements |= tags
            raise
        return results[len(confirms) :]

    def _confirm_calls(self) -> list[ScriptCall]:
        written, self._written = self._written, []
        by_slot: defaultdict[str, list[Written]] = defaultdict(list)
        slots: dict[str, SlotKeys] = {}
        for lease in written:
            by_slot[lease.slot.tag].append(lease.written)
            slots[lease.slot.tag] = lease.slot
        return [
            self._confirm(slots[tag], leases[start : start + _CONFIRM_CHUNK])
            for tag, leases in by_slot.items()
            for start in range(0, len(leases), _CONFIRM_CHUNK)
        ]
