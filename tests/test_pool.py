"""The PostgreSQL pool waits a bounded time for a connection, then gives up."""

from __future__ import annotations

import time

import pytest

from core.db import create_pool


async def test_acquire_gives_up_after_its_timeout(test_database_url: str) -> None:
    pool = await create_pool(test_database_url, min_size=1, max_size=1, acquire_timeout=0.2)
    try:
        async with pool.acquire():
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.fetchval("SELECT 1")
            assert 0.2 <= time.monotonic() - started < 1.0
        # A timeout given to one call still wins over the pool's.
        async with pool.acquire(timeout=5.0) as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
