"""A load generator's own pauses, so that its latency figures can say which part is its own:
how late its event loop woke (whatever the cause: the CPU taken by other work, garbage
collection) and how long its full garbage collections held it."""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass, field
from typing import Any

TICK = 0.1
# A pause this long is counted: the scale of a booking's whole latency here.
COUNTED = 1.0


@dataclass
class Stalls:
    loop_lags: list[float] = field(default_factory=list)
    full_collections: list[float] = field(default_factory=list)
    _collecting_since: float = 0.0

    async def watch(self) -> None:
        """Until cancelled: how much later than asked each TICK's sleep woke."""
        while True:
            asked = time.perf_counter() + TICK
            await asyncio.sleep(TICK)
            self.loop_lags.append(max(0.0, time.perf_counter() - asked))

    def __enter__(self) -> Stalls:
        gc.callbacks.append(self._collection)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._collection)

    def _collection(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._collecting_since = time.perf_counter()
        else:
            self.full_collections.append(time.perf_counter() - self._collecting_since)

    def figures(self) -> dict[str, Any]:
        return {
            "loop_lag_max_s": round(max(self.loop_lags, default=0.0), 2),
            f"loop_lags_over_{COUNTED:g}_s": sum(1 for lag in self.loop_lags if lag > COUNTED),
            "full_gc_count": len(self.full_collections),
            "full_gc_max_s": round(max(self.full_collections, default=0.0), 2),
            "full_gc_total_s": round(sum(self.full_collections), 1),
        }
