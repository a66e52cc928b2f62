"""The two stores every strategy may use, opened and closed together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis import exceptions
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.db import close_pool, create_pool, migrate
from core.failures import STORE_FAILURES, closed_under_it
from core.ledger import Ledger
from core.replica import BrowsingReads
from core.settings import Settings

log = logging.getLogger("slotrush.stores")


class _Cluster(RedisCluster):
    """redis-py's cluster client, whose commands fail as a lost connection (a store failure:
    503 busy) when the client closed their connection under them during a failover."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except (AttributeError, RuntimeError) as exc:
            if not closed_under_it(exc):
                raise
            raise exceptions.ConnectionError(f"{args[0]}: connection closed meanwhile") from exc


# One Redis server, or a Redis Cluster whose nodes the client finds from the one named.
RedisClient = aioredis.Redis | RedisCluster


class Store(StrEnum):
    POSTGRES = "postgres"
    REDIS = "redis"


@dataclass(frozen=True, slots=True)
class Stores:
    settings: Settings
    pg: asyncpg.Pool
    redis: RedisClient
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


def redis_client(url: str, *, cluster: bool = False, max_connections: int = 64) -> RedisClient:
    """A client of the server at `url`, or of the cluster it is a node of (per node, the
    same number of connections at most)."""
    # No automatic retries: a resent take script could take a second number. Scripts that
    # must survive a resend are idempotent by request id instead (see core/lua/).
    if cluster:
        return _Cluster.from_url(
            url,
            max_connections=max_connections,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=5,
            socket_connect_timeout=5,
        )
    return aioredis.Redis.from_url(
        url,
        max_connections=max_connections,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=0,
    )


async def drop_idle_connections(client: RedisClient) -> None:
    """Close the pooled connections not in use (after a restart they are all dead)."""
    if isinstance(client, RedisCluster):
        for node in client.get_nodes():
            await node.disconnect_free_connections()
    else:
        await client.connection_pool.disconnect(inuse_connections=False)


async def names_a_cluster(url: str) -> bool:
    """Whether the server at `url` is a node of a Redis Cluster."""
    async with aioredis.Redis.from_url(url, socket_connect_timeout=5) as probe:
        info = await probe.info("cluster")
    return bool(info.get("cluster_enabled"))


async def open_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """A client of `url`: a cluster client when told so or when the server is a cluster node."""
    if not cluster:
        try:
            cluster = await names_a_cluster(url)
        except STORE_FAILURES as exc:
            # A server that needs no Redis must start while Redis is down; a cluster that is
            # down at the start must be named (SLOTRUSH_REDIS_CLUSTER=1).
            log.warning("Redis at %s not reachable, taken for a single server: %r", url, exc)
    return redis_client(url, cluster=cluster)


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
    try:
        client = await open_redis(redis_url, cluster=settings.redis_cluster)
    except BaseException:
        await close_pool(pool)
        raise
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
