"""No ledger statement crosses hospitals except the ones CROSS_HOSPITAL names, and the schema
lets each key and foreign key be checked within one hospital: the ledger stays ready to be
distributed by hospital (docs/CITUS.md). The rule is in tests/hospital_keys.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import asyncpg
import pytest

from core.queries import parse
from core.stores import Stores
from tests.hospital_keys import (
    CROSS_HOSPITAL,
    HOSPITAL_KEYED,
    LOCAL,
    REFERENCE,
    hospital_problems,
)

REPO = Path(__file__).resolve().parents[1]
NAMED = {
    name: sql
    for folder in ("core/sql", "bench/sql")
    for path in sorted((REPO / folder).glob("*.sql"))
    for name, sql in parse(path.read_text()).items()
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_a_named_statement_stays_within_a_hospital(name: str) -> None:
    problems = hospital_problems(NAMED[name], crosses_hospitals=name in CROSS_HOSPITAL)
    assert problems == [], f"{name}: {problems}"


def test_every_listed_exception_is_a_statement_that_needs_it() -> None:
    assert sorted(CROSS_HOSPITAL) == sorted(set(CROSS_HOSPITAL) & set(NAMED))
    kept_within = [name for name in CROSS_HOSPITAL if not hospital_problems(NAMED[name])]
    assert kept_within == []


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        pytest.param(
            "SELECT * FROM bookings WHERE id = $1",
            "bookings bookings is not tied to a hospital",
            id="by-id-alone",
        ),
        pytest.param(
            "SELECT * FROM schedules WHERE $1::text IS NULL OR hospital_id = $1",
            "schedules schedules is not tied to a hospital",
            id="optional-hospital",
        ),
        pytest.param(
            "SELECT b.id FROM bookings b JOIN schedules s ON s.id = b.schedule_id"
            " WHERE b.hospital_id = $1",
            "schedules s is not tied to a hospital",
            id="join-without-hospital",
        ),
        pytest.param(
            "SELECT s.id, (SELECT count(*) FROM schedule_numbers n WHERE n.schedule_id = s.id)"
            " FROM schedules s WHERE s.hospital_id = $1",
            "schedule_numbers n is not tied to a hospital",
            id="subquery-without-hospital",
        ),
        pytest.param(
            "WITH b AS (DELETE FROM bookings WHERE hospital_id = $1 AND id = $2 RETURNING *)"
            " UPDATE schedule_numbers n SET booking_id = NULL FROM b WHERE n.booking_id = b.id",
            "schedule_numbers n is not tied to a hospital",
            id="update-from-without-hospital",
        ),
        pytest.param(
            "INSERT INTO schedule_numbers (schedule_id, number) VALUES ($1, $2)",
            "INSERT INTO schedule_numbers does not name hospital_id",
            id="insert-without-hospital",
        ),
        pytest.param(
            "SELECT * FROM coupons WHERE hospital_id = $1",
            "table coupons is not classified in tests.hospital_keys",
            id="unclassified-table",
        ),
    ],
)
def test_a_statement_crossing_hospitals_is_refused(sql: str, problem: str) -> None:
    assert hospital_problems(sql) == [problem]


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("SELECT * FROM hospitals WHERE id = ANY($1::text[])", id="any"),
        pytest.param(
            "DELETE FROM redis_releases WHERE (hospital_id, booking_id) IN"
            " (SELECT * FROM unnest($1::text[], $2::bigint[]))",
            id="in-pairs",
        ),
        pytest.param(
            "UPDATE doctors d SET deleted_at = NULL FROM unnest($1::text[], $2::text[])"
            " AS n(hospital_id, id) WHERE d.hospital_id = n.hospital_id AND d.id = n.id",
            id="from-unnest",
        ),
        pytest.param(
            "SELECT h.id, ARRAY(SELECT d.id FROM departments d WHERE d.hospital_id = h.id)"
            " FROM hospitals h JOIN blacklist bl ON bl.hospital_id = h.id WHERE h.id = $1",
            id="joined-and-correlated",
        ),
        pytest.param("SELECT * FROM patient_profiles WHERE patient_id = $1", id="reference"),
    ],
)
def test_statements_tied_to_a_hospital_pass(sql: str) -> None:
    assert hospital_problems(sql) == []


def test_a_listed_exception_still_joins_on_the_hospital() -> None:
    sql = "SELECT s.id, count(b.id) FROM schedules s LEFT JOIN bookings b ON b.schedule_id = s.id"
    assert hospital_problems(sql, crosses_hospitals=True) == [
        "schedules s is not joined on the hospital to bookings b"
    ]


# --- SQL outside the named files ----------------------------------------------------------

_LEDGER_SQL = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE)\s+(" + "|".join(sorted(HOSPITAL_KEYED)) + r")\b"
)


def inline_ledger_sql(source: str) -> list[str]:
    """String constants of Python `source` that read or write a hospital-keyed table."""
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _LEDGER_SQL.search(node.value)
    ]


def test_production_code_keeps_ledger_sql_in_the_named_files() -> None:
    assert inline_ledger_sql('conn.fetch("SELECT * FROM bookings WHERE id = $1")') != []
    found = {
        str(path.relative_to(REPO)): inline
        for package in ("core", "strategies", "server", "loadtest")
        for path in sorted((REPO / package).rglob("*.py"))
        if (inline := inline_ledger_sql(path.read_text()))
    }
    assert found == {}


# --- the schema ---------------------------------------------------------------------------

_TABLES = """
SELECT c.relname AS name, array_agg(a.attname::text) AS columns
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace
GROUP BY c.relname
"""
_UNIQUE_KEYS = """
SELECT c.relname AS table, i.indexrelid::regclass::text AS name,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) AS columns
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE i.indisunique AND c.relnamespace = 'public'::regnamespace
"""
_FOREIGN_KEYS = """
SELECT f.conname AS name, child.relname AS child, parent.relname AS parent,
       ARRAY(SELECT a.attname::text FROM unnest(f.conkey) WITH ORDINALITY AS k(num, pos)
             JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.num
             ORDER BY k.pos) AS columns,
       ARRAY(SELECT a.attname::text FROM unnest(f.confkey) WITH ORDINALITY AS k(num, pos)
             JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.num
             ORDER BY k.pos) AS referenced
FROM pg_constraint f
JOIN pg_class child ON child.oid = f.conrelid
JOIN pg_class parent ON parent.oid = f.confrelid
WHERE f.contype = 'f' AND f.connamespace = 'public'::regnamespace
"""


# Besides keyed to keyed (which must map the hospital): what a distributed ledger allows.
_FOREIGN_KEYS_ALLOWED = {("keyed", "reference"), ("reference", "reference"), ("local", "local")}


def _kind(table: str) -> str:
    if table in HOSPITAL_KEYED:
        return "keyed"
    return "reference" if table in REFERENCE else "local" if table in LOCAL else "unclassified"


async def schema_problems(pg: asyncpg.Pool) -> list[str]:
    """What in the database's schema a hospital's shard could not check on its own."""
    problems: list[str] = []
    for table in await pg.fetch(_TABLES):
        key = HOSPITAL_KEYED.get(table["name"])
        if key is None and table["name"] not in REFERENCE | LOCAL:
            problems.append(f"table {table['name']} is not classified in tests.hospital_keys")
        elif key is not None and key not in table["columns"]:
            problems.append(f"table {table['name']} has no {key}")
    for unique in await pg.fetch(_UNIQUE_KEYS):
        key = HOSPITAL_KEYED.get(unique["table"])
        if key is not None and key not in unique["columns"]:
            problems.append(f"unique key {unique['name']} does not include {key}")
    for fk in await pg.fetch(_FOREIGN_KEYS):
        child, parent = _kind(fk["child"]), _kind(fk["parent"])
        if (child, parent) == ("keyed", "keyed"):
            pairs = set(zip(fk["columns"], fk["referenced"], strict=True))
            if (HOSPITAL_KEYED[fk["child"]], HOSPITAL_KEYED[fk["parent"]]) not in pairs:
                problems.append(f"foreign key {fk['name']} does not map the hospital")
        elif (child, parent) not in _FOREIGN_KEYS_ALLOWED:
            problems.append(f"foreign key {fk['name']} reaches from {child} to {parent}")
    return problems


async def test_the_schema_keeps_every_key_within_a_hospital(stores: Stores) -> None:
    assert await schema_problems(stores.pg) == []


async def test_a_key_reaching_across_hospitals_is_found(stores: Stores) -> None:
    await stores.pg.execute("ALTER TABLE bookings ADD CONSTRAINT one_request UNIQUE (request_id)")
    await stores.pg.execute(
        "ALTER TABLE lease_claims ADD CONSTRAINT claim_booking"
        " FOREIGN KEY (lease_id) REFERENCES bookings (request_id)"
    )
    await stores.pg.execute("CREATE TABLE coupons (id bigint PRIMARY KEY)")

    assert sorted(await schema_problems(stores.pg)) == [
        "foreign key claim_booking does not map the hospital",
        "table coupons is not classified in tests.hospital_keys",
        "unique key one_request does not include hospital_id",
    ]
