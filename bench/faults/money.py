"""After a paid scenario: the holds lapse and the refunds owed are confirmed (waited for, within
a bound), then the lifecycle check (loadtest.client.lifecycle: invariants 8-10 and the money
totals) over the scenario's database, every hospital of it."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from bench.faults.result import ScenarioResult
from loadtest.client.lifecycle import VIOLATIONS, check_lifecycle

# What is still under way: holds not paid nor lapsed yet, refunds the provider has not
# confirmed yet.
_OPEN = """
SELECT (SELECT count(*) FROM bookings WHERE status = 'pending_payment') AS holds,
       (SELECT count(*) FROM refunds WHERE confirmed_at IS NULL) AS refunds
"""
_ENDS = """
SELECT count(*) FILTER (WHERE status = 'expired') AS lapsed,
       count(*) FILTER (WHERE status = 'no_show') AS no_shows
FROM bookings
"""
_POLL_SECONDS = 0.2


async def await_settled(database_url: str, seconds: float) -> str | None:
    """Wait until no hold is pending and every refund owed is confirmed; what is still open
    after `seconds`, or None."""
    deadline = time.monotonic() + seconds
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            row = await conn.fetchrow(_OPEN)
            assert row is not None
            if not row["holds"] and not row["refunds"]:
                return None
            if time.monotonic() > deadline:
                return (
                    f"{seconds:.0f} s after the crowd, {row['holds']} holds still pending and "
                    f"{row['refunds']} refunds unconfirmed"
                )
            await asyncio.sleep(_POLL_SECONDS)
    finally:
        await conn.close()


async def check_money(result: ScenarioResult, database_url: str) -> None:
    """The lifecycle check over the run's database: its violations and money totals."""
    conn = await asyncpg.connect(database_url)
    try:
        verdict = await check_lifecycle(conn)
        ends = await conn.fetchrow(_ENDS)
    finally:
        await conn.close()
    assert ends is not None
    result.money_errors = sum(getattr(verdict, name) for name in VIOLATIONS)
    result.charges, result.refunds = verdict.totals.charges, verdict.totals.refunds
    result.lapsed, result.no_shows = ends["lapsed"], ends["no_shows"]
    if not verdict.ok:
        result.problems.append(verdict.report())
