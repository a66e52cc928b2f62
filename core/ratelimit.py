"""Per-patient and per-address rate limits, shared by every worker through Redis.

Built on the `limits` library (sliding-window counters, one Redis script per check) over the
stores' own Redis connection pool. Off unless configured, so trusted load generators are
never throttled and pay nothing.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio.cluster import RedisCluster

from core.stores import RedisClient


def parse_limit(text: str) -> RateLimitItem | None:
    """None for "" (no limit); ValueError naming the text unless it reads like "20/second"."""
    if not text.strip():
        return None
    try:
        return parse(text)
    except ValueError:
        raise ValueError(f"rate limit {text!r} is not of the form N/second|minute|hour") from None


class RateLimiter:
    def __init__(
        self, client: RedisClient, *, prefix: str, per_patient: str, per_address: str
    ) -> None:
        self._per_patient = parse_limit(per_patient)
        self._per_address = parse_limit(per_address)
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        if not self.enabled:
            return
        if isinstance(client, RedisCluster):
            # limits' cluster storage opens its own client from a URL; not wired in yet.
            raise ValueError(
                "SLOTRUSH_RATE_LIMIT_PATIENT/ADDRESS need one Redis server, and REDIS_URL "
                "names a Redis Cluster node"
            )
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=f"{prefix}:ratelimit",
            # limits types its options as scalars, but passes them to redis-py as they are.
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
        )
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    @property
    def enabled(self) -> bool:
        return self._per_patient is not None or self._per_address is not None

    async def retry_after(self, *, patient_id: str | None, address: str | None) -> int | None:
        """Count one request; the seconds to wait when it is over a limit, else None."""
        limiter = self._limiter
        for item, who in ((self._per_address, address), (self._per_patient, patient_id)):
            if limiter is None or item is None or who is None:
                continue
            if not await limiter.hit(item, "requests", who):
                stats = await limiter.get_window_stats(item, "requests", who)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None
