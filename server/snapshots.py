"""Shared snapshots of list pages (issue 14): however many staff consoles poll a hospital's
schedules or holds during a rush, the ledger is read once per page and interval.

A snapshot is the encoded answer (bytes and ETag) with the moment its read began. A caller
says how old an answer it accepts; a younger snapshot is answered from memory (a 304 costs
no ledger read and no encoding), else one read refreshes it and every caller that arrives
meanwhile waits for that same read instead of starting its own. Without that, consoles
whose polls meet after the snapshot lapsed each read the ledger at once, and a rush's
bookings wait for the pool behind them (results/consoles-*: 96% of throughput lost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Final

import msgspec

from core.keyed import LruCache
from server.caching import encode

_SNAPSHOTS_KEPT: Final = 4096


@dataclass(frozen=True, slots=True)
class Snapshot:
    body: bytes
    etag: str
    read_at: float  # when its read began: its age is counted from there


class SharedSnapshots:
    """Encoded answers by key (whom they may be shown to, and the address asked), at most
    one read of each in flight."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, kept: int = _SNAPSHOTS_KEPT
    ) -> None:
        self._clock = clock
        self._kept: LruCache[Hashable, Snapshot] = LruCache(kept)
        # At most one read in flight per key: (when it began, the read).
        self._reading: dict[Hashable, tuple[float, asyncio.Future[Snapshot]]] = {}

    async def get(
        self, key: Hashable, read: Callable[[], Awaitable[msgspec.Struct]], max_age: float
    ) -> Snapshot:
        """The answer for `key` as read at most `max_age` seconds ago (0: read now, and
        neither shared nor kept: only callers that accept an older answer share one)."""
        now = self._clock()
        if max_age <= 0:
            return Snapshot(*encode(await read()), read_at=now)
        kept = self._kept.get(key)
        if kept is not None and now - kept.read_at <= max_age:
            return kept
        reading = self._reading.get(key)
        if reading is None or now - reading[0] > max_age:
            reading = (now, asyncio.ensure_future(self._read(key, read, now)))
            self._reading[key] = reading
            # Retrieved even if every waiter left: a failed read is not logged as unseen.
            reading[1].add_done_callback(lambda done: done.cancelled() or done.exception())
        # Shielded: a poll that hangs up does not cancel the read the others wait for.
        return await asyncio.shield(reading[1])

    async def _read(
        self, key: Hashable, read: Callable[[], Awaitable[msgspec.Struct]], began: float
    ) -> Snapshot:
        try:
            snapshot = Snapshot(*encode(await read()), read_at=began)
        finally:
            current = self._reading.get(key)
            if current is not None and current[1] is asyncio.current_task():
                del self._reading[key]
        kept = self._kept.get(key)
        if kept is None or kept.read_at < began:
            self._kept.put(key, snapshot)
        return snapshot
