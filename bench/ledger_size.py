"""PostgreSQL bytes per booking row: what a season of bookings will cost on disk.

Read once a strategy's run is over, on its own database, so every row counted is one the
run wrote."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import asyncpg

from bench.stack import on_database
from core.queries import parse

_SQL = parse(files("bench").joinpath("sql", "footprint.sql").read_text())["ledger_footprint"]


def ledger_footprint(database_url: str) -> dict[str, Any]:
    """Booking rows, the bytes of their table (indexes and TOAST included) and of the whole
    database, and each per row."""

    row: asyncpg.Record = on_database(database_url, lambda conn: conn.fetchrow(_SQL))
    rows = int(row["rows"])
    return {
        "booking_rows": rows,
        "bookings_bytes": int(row["bookings_bytes"]),
        "database_bytes": int(row["database_bytes"]),
        "bookings_bytes_per_row": row["bookings_bytes"] / rows if rows else None,
        "database_bytes_per_row": row["database_bytes"] / rows if rows else None,
    }
