"""The rule that keeps the ledger distributable by hospital (docs/CITUS.md), as code.

THE RULE for a statement (a named query in core/sql/ or bench/sql/):
- Each hospital-keyed table it reads or writes is tied to a hospital: its hospital column
  (`hospital_id`; `id` for hospitals) is compared with `=`, `= ANY(...)` or `IN (...)` to a
  parameter, a constant, a column of an enclosing query, of a CTE, of a subquery or of
  `unnest(...)`, or to the hospital column of another table that is tied so; in the WHERE
  or in the JOIN's ON, ANDed at its top (an equality under OR is no tie).
- An INSERT into a hospital-keyed table names the hospital column.
- A statement that must reach every hospital is named in CROSS_HOSPITAL with its reason;
  even there, hospital-keyed tables are joined on the hospital column.
Columns are qualified whenever a query has more than one table.

Every table a migration creates is in exactly one of HOSPITAL_KEYED, REFERENCE and LOCAL
(PostgreSQL's own, pg_*, are none of the ledger's);
every unique key of a hospital-keyed table includes its hospital column, and every foreign
key between two of them maps hospital column to hospital column.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

# Distributed by hospital, all colocated: table -> its hospital column.
HOSPITAL_KEYED = {
    "hospitals": "id",
    "departments": "hospital_id",
    "doctors": "hospital_id",
    "schedules": "hospital_id",
    "schedule_numbers": "hospital_id",
    "bookings": "hospital_id",
    "blacklist": "hospital_id",
    "patient_tags": "hospital_id",
    "lease_claims": "hospital_id",
    "redis_releases": "hospital_id",
    "redis_config_syncs": "hospital_id",
    "redis_closures": "hospital_id",
    "redis_resizes": "hospital_id",
    "settlements": "hospital_id",
    "check_in_failures": "hospital_id",
    "payments": "hospital_id",
    "money_movements": "hospital_id",
    "refunds": "hospital_id",
    "blacklist_rules": "hospital_id",
    "breaches": "hospital_id",
    "whitelist": "hospital_id",
    "notifications": "hospital_id",
}
# Copied whole to every node (reference tables): the patient's own, no hospital's.
REFERENCE = frozenset({"patient_profiles"})
# The coordinator's own, never distributed: migrations, and the job queue (pgqueuer's tables,
# whose jobs carry their hospital in the payload).
LOCAL = frozenset(
    {
        "schema_migrations",
        "pgqueuer",
        "pgqueuer_log",
        "pgqueuer_schedules",
        "pgqueuer_statistics",
    }
)

# The only statements that may reach every hospital, each with its reason.
CROSS_HOSPITAL = {
    "list_hospitals": "platform: the list of hospitals",
    "audit_schedules": "platform: the audit over every hospital ($1 NULL)",
    "audit_duplicates": "platform: the audit over every hospital ($1 NULL)",
    "list_schedules": "browsing every hospital's schedules (no hospital filter)",
    "get_schedule": "GET /v1/schedules/{id} names no hospital; kept per process once read",
    "get_booking": "GET /v1/bookings/{id} names no hospital; the row tells it",
    "list_patient_bookings": "GET /v1/me/bookings: a patient's bookings at every hospital",
    "get_booking_by_idempotency_key": "API.md v1: an Idempotency-Key is the patient's everywhere",
    "redis_prune_claims": "reconciler sweep: settled lease claims of every hospital",
    "redis_releases_due": "reconciler sweep: releases left over at any hospital",
    "redis_config_syncs_due": "reconciler sweep: config syncs left over at any hospital",
    "redis_closures_due": "reconciler sweep: closures left over at any hospital",
    "redis_resizes_due": "reconciler sweep: capacity changes left over at any hospital",
    "expire_holds": "job sweep: lapsed holds at any hospital, oldest first",
    "settlements_due": "job sweep: each hospital's dates past its settle_at",
    "ledger_footprint": "bench: the ledger's bytes per booking, every hospital's bookings",
    "claim_refunds_due": "job sweep: refunds owed at any hospital, the longest waiting first",
    "money_violations": "invariant 8 over every hospital ($1 NULL), for tests and audits",
    "lapse_violations": "invariant 9 over every hospital ($1 NULL), for run checks",
    "settlement_violations": "invariant 10 over every hospital ($1 NULL), for run checks",
    "money_totals": "the money totals over every hospital ($1 NULL), for run checks",
    "write_reminders": "job sweep: reminders of visits soon at every hospital with a webhook",
    "claim_notifications": "job sweep: notifications due at any hospital, oldest first",
}

_ANY_TABLE = frozenset(HOSPITAL_KEYED) | REFERENCE | LOCAL
# PostgreSQL's own views (pg_stat_wal_receiver) are every server's, no ledger's.
_SYSTEM = "pg_"


def hospital_problems(sql: str, *, crosses_hospitals: bool = False) -> list[str]:
    """What in `sql` breaks the rule; `crosses_hospitals`: a listed exception, whose
    hospital-keyed tables need only be joined on the hospital column."""
    try:
        tree = sqlglot.parse_one(sql, read="postgres", error_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.ParseError as exc:
        return [f"cannot be parsed: {exc}"]
    if isinstance(tree, exp.Command):
        return ["cannot be parsed: write it in syntax the checker understands"]
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    problems: list[str] = []
    for node in tree.walk():
        if isinstance(node, exp.Insert):
            problems += _insert_problems(node)
        elif isinstance(node, exp.Select | exp.Update | exp.Delete):
            problems += _Scope(node, ctes).problems(crosses_hospitals)
    return problems


def _insert_problems(insert: exp.Insert) -> list[str]:
    target = insert.this
    columns = [c.name for c in target.expressions] if isinstance(target, exp.Schema) else []
    table = target.this if isinstance(target, exp.Schema) else target
    key = HOSPITAL_KEYED.get(table.name)
    if key is not None and key not in columns:
        return [f"INSERT INTO {table.name} does not name {key}"]
    return []


@dataclass
class _Scope:
    """One SELECT, UPDATE or DELETE: its own tables and conditions, not its subqueries'."""

    node: exp.Expression
    ctes: set[str]
    # alias -> table name; "" for a CTE, a subquery or a function such as unnest.
    sources: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for item in self._items():
            # A table function (generate_series) is a Table node without a name.
            if isinstance(item, exp.Table) and item.name and item.name not in self.ctes:
                if item.name not in _ANY_TABLE and not item.name.startswith(_SYSTEM):
                    self.unknown.append(item.name)
                self.sources[item.alias_or_name] = item.name
            elif item.alias_or_name:
                self.sources[item.alias_or_name] = ""

    def _items(self) -> Iterator[exp.Expression]:
        node = self.node
        if isinstance(node, exp.Update | exp.Delete):
            yield node.this
        from_ = node.args.get("from_")
        if from_ is not None:
            yield from_.this
        yield from node.args.get("using") or ()
        for join in node.args.get("joins") or ():
            yield join.this

    def _conditions(self) -> Iterator[exp.Expression]:
        where = self.node.args.get("where")
        if where is not None:
            yield from _conjuncts(where.this)
        for join in self.node.args.get("joins") or ():
            if join.args.get("on") is not None:
                yield from _conjuncts(join.args["on"])

    def problems(self, crosses_hospitals: bool) -> list[str]:
        problems = [f"table {name} is not classified in {__name__}" for name in self.unknown]
        keyed = {alias for alias, table in self.sources.items() if table in HOSPITAL_KEYED}
        tied, links = self._ties(keyed)
        loose = keyed - _closure(tied, links)
        if not loose:
            return problems
        # A correlated subquery must follow its outer query's hospital, listed or not.
        if not crosses_hospitals or self._correlated():
            return problems + [
                f"{self._named(alias)} is not tied to a hospital" for alias in sorted(loose)
            ]
        # Every hospital may be read, but the tables must be joined on their hospitals.
        root = min(keyed)
        apart = keyed - _closure({root}, links)
        return problems + [
            f"{self._named(alias)} is not joined on the hospital to {self._named(root)}"
            for alias in sorted(apart)
        ]

    def _correlated(self) -> bool:
        return any(
            column.table and column.table not in self.sources
            for condition in self._conditions()
            for column in _own_columns(condition)
        )

    def _named(self, alias: str) -> str:
        return f"{self.sources[alias]} {alias}"

    def _ties(self, keyed: set[str]) -> tuple[set[str], set[tuple[str, str]]]:
        """(tables tied to a hospital by a value, pairs joined on their hospital columns)."""
        tied: set[str] = set()
        links: set[tuple[str, str]] = set()
        for condition in self._conditions():
            for alias, other in self._compared_keys(condition, keyed):
                if other is None:
                    tied.add(alias)
                else:
                    links.add((alias, other))
        return tied, links

    def _compared_keys(
        self, condition: exp.Expression, keyed: set[str]
    ) -> Iterator[tuple[str, str | None]]:
        """(table, None) for a key compared with a value; (table, other) for two keys."""
        if isinstance(condition, exp.EQ):
            sides = (condition.this, condition.expression)
            for mine, theirs in (sides, sides[::-1]):
                alias = self._key_of(mine, keyed)
                if alias is None:
                    continue
                other = self._key_of(theirs, keyed)
                if other is not None:
                    yield alias, other
                elif not self._reads_keyed_table(theirs, keyed):
                    yield alias, None
        elif isinstance(condition, exp.In):
            columns = (
                condition.this.expressions
                if isinstance(condition.this, exp.Tuple)
                else [condition.this]
            )
            for column in columns:
                alias = self._key_of(column, keyed)
                if alias is not None:
                    yield alias, None

    def _owner(self, column: exp.Column) -> str | None:
        """The alias of this scope's source the column belongs to; None if not this scope's."""
        if column.table:
            return column.table if column.table in self.sources else None
        return next(iter(self.sources)) if len(self.sources) == 1 else None

    def _key_of(self, node: exp.Expression, keyed: set[str]) -> str | None:
        if not isinstance(node, exp.Column):
            return None
        alias = self._owner(node)
        if alias in keyed and node.name == HOSPITAL_KEYED[self.sources[alias]]:
            return alias
        return None

    def _reads_keyed_table(self, node: exp.Expression, keyed: set[str]) -> bool:
        """Whether a column of this scope's own hospital-keyed tables is in `node`."""
        return any(self._owner(c) in keyed for c in _own_columns(node))


def _closure(tied: set[str], links: set[tuple[str, str]]) -> set[str]:
    """`tied` and every table joined to one of them on the hospital, directly or not."""
    while True:
        grown = tied | {b for a, b in links if a in tied} | {a for a, b in links if b in tied}
        if grown == tied:
            return tied
        tied = grown


def _conjuncts(node: exp.Expression) -> Iterator[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.expression)
    else:
        yield node


def _own_columns(node: exp.Expression) -> Iterator[exp.Column]:
    """Columns in `node` outside any subquery of it."""
    if isinstance(node, exp.Column):
        yield node
        return
    if isinstance(node, exp.Select | exp.Subquery):
        return
    for child in node.iter_expressions():
        yield from _own_columns(child)
