"""Which exceptions mean "a store is unavailable: retry later", never "the request is refused".

In the core rather than beside a strategy, because three layers must classify a failure
alike: the strategy base class turns one into ServiceUnavailable, the HTTP middleware
answers it 503 `busy`, and the runner exits 1 when one stops the server from starting.
"""

from __future__ import annotations

import asyncio

import asyncpg
import redis.exceptions

# A store that failed or gave up on a request in flight: a retry may well succeed.
STORE_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    # A Redis Cluster failing over (CLUSTERDOWN, TRYAGAIN) or not yet knowing who took over
    # a slot: answered again within seconds.
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
)

# What an HTTP answer calls `busy`: the failures above, and a store out of resources (too
# many connections, disk full), which the client should also retry rather than give up on.
STORE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *STORE_FAILURES,
    asyncpg.exceptions.InsufficientResourcesError,
)


def closed_under_it(exc: BaseException) -> bool:
    """Whether `exc` is what a redis-py command raises when its connection was closed while
    it used it: redis-py's cluster client closes every connection it has, in use or not,
    when a node answers CLUSTERDOWN (a failover), and a command then in flight meets a
    stream that is gone (AttributeError on None) or a transport that is closed."""
    if isinstance(exc, AttributeError):
        return exc.obj is None
    return isinstance(exc, RuntimeError) and "closed" in str(exc)
