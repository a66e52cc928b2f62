"""Which schedules have a waiting room open, as the booking path asks it: remembered per
process for a second, so a flash crowd's bookings cost no Redis round trip to learn it.

A room opened (or closed) by an administrator is enforced by every process within that
second. While Redis is out of reach the last answer known stands, and a schedule never
looked up books without a room: the room orders a crowd fairly, the booking path's own
backpressure still protects the stores.
"""

from __future__ import annotations

import time
from typing import Final

from core.failures import STORE_FAILURES
from core.keyed import LruCache
from core.waiting_room.rooms import WaitingRooms

_REMEMBERED_SECONDS: Final = 1.0
_SCHEDULES_KEPT: Final = 100_000


class OpenRooms:
    def __init__(self, rooms: WaitingRooms) -> None:
        self._rooms = rooms
        # schedule id -> (when to look again (monotonic), the room's closing (epoch s) or 0)
        self._known: LruCache[int, tuple[float, float]] = LruCache(_SCHEDULES_KEPT)

    async def is_open(self, schedule_id: int) -> bool:
        now = time.monotonic()
        known = self._known.get(schedule_id)
        if known is None or known[0] <= now:
            closes = await self._look_up(schedule_id, 0.0 if known is None else known[1])
            known = (now + _REMEMBERED_SECONDS, closes)
            self._known.put(schedule_id, known)
        return known[1] > time.time()

    def forget(self, schedule_id: int) -> None:
        """This process changed the room: look again at the next booking."""
        self._known.pop(schedule_id)

    async def _look_up(self, schedule_id: int, last_known: float) -> float:
        try:
            config = await self._rooms.config(schedule_id)
        except STORE_FAILURES:
            return last_known
        return 0.0 if config is None else config.closes_at.timestamp()
