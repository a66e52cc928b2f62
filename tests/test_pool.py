"""The PostgreSQL pool: it waits a bounded time for a connection, then gives up; and it hands
a connection back without a reset round trip, which is safe only because no statement of
slotrush leaves state in a session (checked here)."""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db import create_pool
from core.queries import parse

REPO = Path(__file__).resolve().parents[1]
# What would outlive a transaction on a pooled connection and reach its next user; in the
# repository's spelling (keywords upper case, functions lower case), so prose is not matched.
_SESSION_STATE = re.compile(
    r"^\s*(SET\s+(?!LOCAL\b|TRANSACTION\b|CONSTRAINTS\b)|LISTEN\b|PREPARE\b)"
    r"|\bpg_(try_)?advisory_lock(_shared)?\s*\("
    r"|\bset_config\s*\([^)]*\bfalse\s*\)"
    r"|\bCREATE\s+TEMP(ORARY)?\b"
    r"|\bWITH\s+HOLD\b"
)


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


async def test_a_released_connection_is_not_reset_but_its_transaction_is_ended(
    test_database_url: str,
) -> None:
    pool = await create_pool(test_database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            # Session state slotrush never makes: here only to see that no RESET ALL ran.
            await conn.execute("SET application_name = 'left-behind'")
            await conn.execute("BEGIN")
            await conn.execute("SELECT pg_advisory_xact_lock(42)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "left-behind"
            assert not conn.is_in_transaction()
            held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42"
            assert await conn.fetchval(held) == 0
    finally:
        await pool.close()


def _statements() -> Iterator[tuple[str, str]]:
    """(where, text) of every named statement and every string literal of the code."""
    for path in sorted((REPO / "core" / "sql").glob("*.sql")):
        for name, sql in parse(path.read_text()).items():
            yield f"{path.name}:{name}", sql
    for folder in ("core", "server", "strategies"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    yield f"{path.relative_to(REPO)}:{node.lineno}", node.value


def test_no_statement_leaves_state_in_its_session() -> None:
    leaving = [where for where, text in _statements() if _SESSION_STATE.search(text)]
    assert leaving == []


@pytest.mark.parametrize(
    "sql",
    [
        "SET search_path = elsewhere",
        "LISTEN bookings",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock_shared(1)",
        "SELECT set_config('a.b', 'c', false)",
        "CREATE TEMP TABLE t (a int)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    ],
)
def test_the_check_sees_session_state(sql: str) -> None:
    assert _SESSION_STATE.search(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SET LOCAL lock_timeout = '1s'",
        "SELECT pg_advisory_xact_lock(1)",
        "UPDATE hospitals SET config_version = config_version + 1 WHERE id = $1",
        "UPDATE hospitals\nSET config_version = 1",
    ],
)
def test_the_check_lets_transaction_state_pass(sql: str) -> None:
    assert not _SESSION_STATE.search(sql)
