"""A feed's rows as a hospital information system sends them, checked one by one.

The HTTP layer decodes the envelope (a JSON object or a CSV file; a malformed one is 400);
each row then becomes a FeedRow or a RowError naming what is wrong with it, so one bad row
never stops the rest of the feed, and an integrator learns every problem in one answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from core.domain import ID_PATTERN, Code, Period

MAX_CAPACITY: Final = 100_000
MAX_FEE_CENTS: Final = 2**63 - 1
REQUIRED: Final = ("external_id", "department_id", "doctor_id", "visit_date", "period", "capacity")
OPTIONAL: Final = ("opens_at", "fee_cents")
COLUMNS: Final = REQUIRED + OPTIONAL


@dataclass(frozen=True, slots=True)
class FeedRow:
    # 1-based: the row's place in the JSON list, or its line in the CSV file.
    line: int
    external_id: str
    department_id: str
    doctor_id: str
    visit_date: dt.date
    period: Period
    capacity: int
    fee_cents: int
    # None: a new session opens when created; an existing one keeps its opening time.
    opens_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    external_id: str | None
    code: Code
    reason: str


class _Bad(Exception):
    def __init__(self, reason: str, code: Code = Code.INVALID_REQUEST) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def rows(records: Iterable[tuple[int, Mapping[str, Any]]]) -> list[FeedRow | RowError]:
    """Each (line, fields) checked; a second row with an external_id already seen is an
    error (which of the two is meant cannot be known), the first stays."""
    checked: list[FeedRow | RowError] = []
    seen: set[str] = set()
    for line, fields in records:
        row = one_row(line, fields)
        if isinstance(row, FeedRow):
            if row.external_id in seen:
                row = RowError(line, row.external_id, Code.INVALID_REQUEST, "external_id repeats")
            else:
                seen.add(row.external_id)
        checked.append(row)
    return checked


def one_row(line: int, fields: Mapping[str, Any]) -> FeedRow | RowError:
    external_id = fields.get("external_id")
    named = external_id if isinstance(external_id, str) and _is_id(external_id) else None
    try:
        unknown = sorted(set(fields) - set(COLUMNS))
        if unknown:
            raise _Bad(f"unknown field {unknown[0]}")
        return FeedRow(
            line=line,
            external_id=_id(fields, "external_id"),
            department_id=_id(fields, "department_id"),
            doctor_id=_id(fields, "doctor_id"),
            visit_date=_date(fields),
            period=_period(fields),
            capacity=_integer(fields, "capacity", 1, MAX_CAPACITY),
            fee_cents=_integer(fields, "fee_cents", 0, MAX_FEE_CENTS, default=0),
            opens_at=_time(fields),
        )
    except _Bad as bad:
        return RowError(line, named, bad.code, bad.reason)


def _required(fields: Mapping[str, Any], name: str) -> Any:
    value = fields.get(name)
    if value is None:
        raise _Bad(f"{name} is required")
    return value


def _is_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def _id(fields: Mapping[str, Any], name: str) -> str:
    value = _required(fields, name)
    if not isinstance(value, str) or not _is_id(value):
        raise _Bad(f"{name} must be 1..64 characters of [A-Za-z0-9._-]")
    return value


def _date(fields: Mapping[str, Any]) -> dt.date:
    value = _required(fields, "visit_date")
    try:
        if isinstance(value, str) and len(value) == 10:
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise _Bad("visit_date must be a real date such as 2030-01-31")


def _period(fields: Mapping[str, Any]) -> Period:
    value = _required(fields, "period")
    try:
        return Period(value)
    except ValueError:
        raise _Bad("period must be am, pm or night") from None


def _integer(
    fields: Mapping[str, Any], name: str, low: int, high: int, default: int | None = None
) -> int:
    value = fields.get(name)
    if value is None and default is not None:
        return default
    if value is None:
        raise _Bad(f"{name} is required")
    if type(value) is not int or not low <= value <= high:
        raise _Bad(f"{name} must be an integer from {low} to {high}")
    return value


def _time(fields: Mapping[str, Any]) -> dt.datetime | None:
    value = fields.get("opens_at")
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parsed = dt.datetime.fromisoformat(value.upper())
            if parsed.tzinfo is not None and "T" in value.upper():
                return parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        pass
    raise _Bad("opens_at must be an RFC 3339 time such as 2030-01-31T08:00:00Z")
