"""What the tests of Ledger.refresh_statistics read: how often schedule_numbers was analyzed."""

from __future__ import annotations

import asyncpg


async def numbers_analyzed(pool: asyncpg.Pool) -> tuple[int, float]:
    """ANALYZE commands run on schedule_numbers (never autovacuum's), and the rows the
    planner believes it has."""
    row = await pool.fetchrow(
        "SELECT t.analyze_count, c.reltuples FROM pg_stat_user_tables t"
        " JOIN pg_class c ON c.oid = t.relid WHERE t.relid = 'schedule_numbers'::regclass"
    )
    return int(row["analyze_count"]), float(row["reltuples"])
