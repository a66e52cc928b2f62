"""Public browsing reads on a streaming replica (DATABASE_REPLICA_URL), the primary otherwise.

Only reads a client may see a little late go through here: the lists of hospitals,
departments and doctors, and the schedule lists. Booking, cancelling, an administrator's
reads and the sold-out check never do; they use the primary's pool.

Staleness: the replica is checked every `interval` seconds and serves only while its replay
lag (core/sql/replica.sql) is at most `max_lag`, so an answer it gives is at most
`max_lag + interval` behind the primary (1 s with the settings' default), plus WAL still on
its way, which the check cannot see. A replica that stops streaming from its primary is
noticed when its WAL receiver gives up (`wal_receiver_timeout`). A replica that does not
answer, lags too far or fails a read leaves every read to the primary until a check finds
it well again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from core.failures import STORE_FAILURES
from core.metrics import BROWSING_READS, REPLICA_LAG
from core.queries import query as q

T = TypeVar("T")

_ON_REPLICA = BROWSING_READS.labels("replica")
_ON_PRIMARY = BROWSING_READS.labels("primary")


class BrowsingReads:
    """Where browsing reads run: `replica` while it is usable, else `primary`. Without a
    replica, every read runs on the primary."""

    def __init__(
        self,
        primary: asyncpg.Pool,
        replica: asyncpg.Pool | None = None,
        *,
        max_lag: float = 0.5,
        interval: float = 0.5,
    ) -> None:
        self._primary = primary
        self._replica = replica
        self.max_lag = max_lag
        self.interval = interval
        # Usable only once a check said so.
        self.on_replica = False

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._read(lambda pool: pool.fetch(sql, *args))
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._read(lambda pool: pool.fetchrow(sql, *args))
        return row

    async def check(self) -> bool:
        """Measure the replica's lag now and decide whether it serves; False without one."""
        if self._replica is None:
            return False
        try:
            lag = await self._replica.fetchval(q("replica_lag"))
        except STORE_FAILURES:
            lag = None
        REPLICA_LAG.set(math.nan if lag is None else lag)
        self.on_replica = lag is not None and lag <= self.max_lag
        return self.on_replica

    async def watch(self) -> None:
        """Check the replica every `interval` seconds, until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.interval)

    async def _read(self, run: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
        if self.on_replica and self._replica is not None:
            try:
                answer = await run(self._replica)
            except STORE_FAILURES:
                # Until the next check says otherwise: this read and the next go to the primary.
                self.on_replica = False
            else:
                _ON_REPLICA.inc()
                return answer
        _ON_PRIMARY.inc()
        return await run(self._primary)
