"""What the tests of Ledger.refresh_statistics read: how often a table was analyzed."""

from __future__ import annotations

import asyncpg


async def analyzed(pool: asyncpg.Pool, table: str) -> tuple[int, float]:
    """ANALYZE commands run on `table` (never autovacuum's), and the rows the planner
    believes it has."""
    row = await pool.fetchrow(
        "SELECT t.analyze_count, c.reltuples FROM pg_stat_user_tables t"
        " JOIN pg_class c ON c.oid = t.relid WHERE t.relid = $1::regclass",
        table,
    )
    return int(row["analyze_count"]), float(row["reltuples"])
