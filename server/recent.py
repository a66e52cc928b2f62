"""Schedule pages answered from memory for up to a second (API.md lets `remaining` lag a
second): during a rush, every console of a hospital polls the same page every second, and
counting a hot schedule's bookings for each of them would take the ledger's connections
from the bookings themselves. One read per page, query and caller's hospital a second."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from core.keyed import LruCache

_TTL_SECONDS: Final = 1.0
_PAGES_KEPT: Final = 4096
T = TypeVar("T")


class RecentPages(Generic[T]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pages: LruCache[tuple[str | None, str], tuple[float, T]] = LruCache(_PAGES_KEPT)

    async def get(self, hospital_id: str | None, query: str, read: Callable[[], Awaitable[T]]) -> T:
        """The page of `query` as read at most a second ago for a caller confined to
        `hospital_id` (None: the platform or a patient), else read now."""
        key = (hospital_id, query)
        now = self._clock()
        kept = self._pages.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        page = await read()
        self._pages.put(key, (now + _TTL_SECONDS, page))
        return page
