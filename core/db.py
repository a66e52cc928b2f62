"""PostgreSQL plumbing: the pool and idempotent schema migrations."""

from __future__ import annotations

import asyncpg

from core.queries import migrations

# Any constant works; it only has to be the same in every process migrating one database.
_MIGRATION_LOCK = 0x510752


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        # A statement stuck behind a lock for this long is treated as "busy", not waited on.
        command_timeout=30,
        server_settings={"application_name": "slotrush"},
    )
    if pool is None:
        raise RuntimeError("asyncpg.create_pool answered no pool")
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
