"""Per-patient and per-address booking rate limits, shared by every worker through Redis.

Built on the `limits` library (sliding-window counters, one Redis script per check). Off
unless configured, so trusted load generators are never throttled.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter


class RateLimiter:
    def __init__(self, redis_url: str, *, prefix: str, per_patient: str, per_address: str) -> None:
        self._storage = RedisStorage(
            f"async+{redis_url}", implementation="redispy", key_prefix=f"{prefix}:ratelimit"
        )
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._per_patient: RateLimitItem | None = parse(per_patient) if per_patient else None
        self._per_address: RateLimitItem | None = parse(per_address) if per_address else None

    @property
    def enabled(self) -> bool:
        return self._per_patient is not None or self._per_address is not None

    async def retry_after(self, *, patient_id: str | None, address: str | None) -> int | None:
        """Count one booking attempt; seconds to wait when over a limit, else None."""
        for item, who in ((self._per_address, address), (self._per_patient, patient_id)):
            if item is None or who is None:
                continue
            if not await self._limiter.hit(item, "booking", who):
                stats = await self._limiter.get_window_stats(item, "booking", who)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None
