"""Named SQL read once from core/sql/*.sql (blocks headed "-- name: NAME")."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

import asyncpg

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def query(name: str) -> str:
    """The SQL of one named query; a KeyError names the unknown query."""
    return _all()[name]


async def fetch_one(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, *args: object
) -> asyncpg.Record:
    """The row of a named query that always answers exactly one."""
    row = await conn.fetchrow(query(name), *args)
    if row is None:
        raise RuntimeError(f"query {name!r} answered no row")
    return row


@cache
def _all() -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in files("core").joinpath("sql").iterdir():
        if entry.name.endswith(".sql"):
            for name, sql in parse(entry.read_text()).items():
                if name in found:
                    raise ValueError(f"query {name!r} is defined twice (again in {entry.name})")
                found[name] = sql
    return found


def migrations() -> list[tuple[str, str]]:
    """(version, sql) of every schema migration, in order."""
    folder = files("core").joinpath("sql", "migrations")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name)
    return [(e.name.removesuffix(".sql"), e.read_text()) for e in entries]
