"""The two stores every strategy may use, opened and closed together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

import asyncpg
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.db import close_pool, create_pool, migrate
from core.ledger import Ledger
from core.replica import BrowsingReads
from core.settings import Settings


class Store(StrEnum):
    POSTGRES = "postgres"
    REDIS = "redis"


@dataclass(frozen=True, slots=True)
class Stores:
    settings: Settings
    pg: asyncpg.Pool
    redis: aioredis.Redis
    ledger: Ledger

    async def ping(self, stores: Iterable[Store]) -> dict[str, bool]:
        """Which of `stores` answer now; used by /healthz."""
        probes: dict[Store, Callable[[], Awaitable[object]]] = {
            Store.REDIS: self.redis.ping,
            Store.POSTGRES: lambda: self.pg.fetchval("SELECT 1"),
        }
        return {store.value: await _answers(probes[store]()) for store in sorted(stores)}


async def _answers(probe: Awaitable[object]) -> bool:
    try:
        await probe
    except Exception:
        return False
    return True


def redis_client(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    # No automatic retries: a resent take script could take a second number. Scripts that
    # must survive a resend are idempotent by request id instead (see core/lua/).
    return aioredis.Redis.from_url(
        url,
        max_connections=max_connections,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=0,
    )


@asynccontextmanager
async def open_stores(
    settings: Settings, *, redis_url: str, database_url: str, migrate_schema: bool = True
) -> AsyncIterator[Stores]:
    pool = await create_pool(
        database_url,
        min_size=settings.pg_pool_min,
        max_size=settings.pg_pool_max,
        acquire_timeout=settings.pg_acquire_timeout,
    )
    client = redis_client(redis_url)
    try:
        if migrate_schema:
            await migrate(pool)
        async with _browsing_reads(settings, pool) as reads:
            ledger = Ledger(pool, reads)
            yield Stores(settings=settings, pg=pool, redis=client, ledger=ledger)
    finally:
        await client.aclose()
        await close_pool(pool)


@asynccontextmanager
async def _browsing_reads(
    settings: Settings, primary: asyncpg.Pool
) -> AsyncIterator[BrowsingReads]:
    """The primary alone, or with the replica of the settings and its watch."""
    if settings.database_replica_url is None:
        yield BrowsingReads(primary)
        return
    async with AsyncExitStack() as stack:
        # No connection at start: a replica that is down must not stop the server starting.
        replica = await create_pool(
            settings.database_replica_url,
            min_size=0,
            max_size=settings.pg_pool_max,
            acquire_timeout=settings.pg_acquire_timeout,
        )
        stack.push_async_callback(close_pool, replica)
        reads = BrowsingReads(primary, replica, max_lag=settings.replica_max_lag)
        watch = asyncio.create_task(reads.watch())
        stack.push_async_callback(_stop, watch)
        yield reads


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait([task])
