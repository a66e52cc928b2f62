"""PostgreSQL plumbing: the pool and idempotent schema migrations."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import asyncpg

from core.queries import migrations

log = logging.getLogger("slotrush.db")

# How long closing a pool waits for its connections to come back: a connection stuck on a
# PostgreSQL that went away (a job runner's listener, a query in flight) must not hold a
# server that is shutting down.
_CLOSE_SECONDS: Final = 5.0

# Any constant works; it only has to be the same in every process migrating one database.
_MIGRATION_LOCK = 0x510752


class _Pool(asyncpg.Pool):
    """A pool whose acquire() gives up after `acquire_timeout` unless told otherwise: under
    overload a request waits for a connection a bounded time, then answers busy."""

    __slots__ = ("_acquire_timeout",)

    def __init__(self, dsn: str, *, acquire_timeout: float | None, **kwargs: Any) -> None:
        super().__init__(dsn, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """asyncpg's default reset costs a round trip on every release (`RESET ALL`, `UNLISTEN
    *`, `pg_advisory_unlock_all()`, `CLOSE ALL`): 12% of a booking worker's CPU. slotrush
    leaves no session state on a pooled connection (its advisory locks are transaction
    scoped, it sets no setting outside a transaction, keeps no cursor past one, and the job
    runner's LISTEN connection resets itself before giving it back), which
    tests/test_pool.py checks. asyncpg still rolls back a transaction left open and drops
    listener callbacks before calling this."""


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 20, acquire_timeout: float | None = None
) -> asyncpg.Pool:
    pool = _Pool(
        dsn,
        acquire_timeout=acquire_timeout,
        min_size=min_size,
        max_size=max_size,
        # asyncpg.create_pool's defaults, which it would pass for us.
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        # A statement stuck behind a lock for this long is treated as "busy", not waited on.
        command_timeout=30,
        server_settings={"application_name": "slotrush"},
        reset=_nothing_to_reset,
    )
    await pool
    return pool


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply pending migrations; safe to call from many processes at once. Returns applied."""
    applied: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migrations():
            if version not in done:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                applied.append(version)
    return applied


async def close_pool(pool: asyncpg.Pool) -> None:
    """Close gracefully while the connections come back, then cut what is left."""
    try:
        await asyncio.wait_for(pool.close(), _CLOSE_SECONDS)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("pool not closed in %g s (%r): connections cut", _CLOSE_SECONDS, exc)
        pool.terminate()
