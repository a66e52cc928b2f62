"""Strict parsing of what clients send: bodies, query strings, path ids and headers.

Everything either becomes a domain value or a SlotrushError(invalid_request) whose detail
names the field, never the value (a hostile value is not echoed back). Unknown fields are
rejected; booleans are not integers; dates and times must be exactly YYYY-MM-DD and RFC 3339.

Path ids of things that are looked up (schedules, bookings) must be canonical positive
integers that fit a bigint; anything else names nothing, so it is that thing's 404. Ids of
things that are created or upserted (hospital and patient ids in admin paths) must match the
id charset, else 400.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson
from multidict import MultiMapping

from core.domain import ID_PATTERN, Code, Period, Rules, ScheduleIn
from core.errors import SlotrushError

MAX_BODY_BYTES: Final = 64 * 1024
MAX_BATCH: Final = 10_000
# 10,000 schedules of long ids do not fit 64 KiB; only an admin's batch may be this large.
MAX_BATCH_BODY_BYTES: Final = 8 * 1024 * 1024
MAX_CAPACITY: Final = 100_000
MAX_BIGINT: Final = 2**63 - 1
MAX_INT: Final = 2**31 - 1
_CANONICAL_ID: Final = re.compile(r"[1-9][0-9]{0,18}")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339 with an offset, years 1000..8999: far enough from the ends of Python's calendar
# that no offset can push a time off it. The OpenAPI document publishes the same pattern.
TIME_PATTERN: Final = (
    r"^[1-8][0-9]{3}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_TIME: Final = re.compile(TIME_PATTERN)
_IDEMPOTENCY_KEY: Final = re.compile(r"[\x20-\x7e]{1,128}")
_SCHEDULE_FIELDS: Final = frozenset(
    {"hospital_id", "department_id", "doctor_id", "visit_date", "period", "capacity"}
)
_SCHEDULE_OPTIONAL: Final = frozenset({"fee_cents", "opens_at"})
_PERIODS: Final = frozenset(p.value for p in Period)
_RULES_FIELDS: Final = frozenset(
    {"max_per_day", "max_per_department_per_day", "cancel_cutoff_minutes"}
)
_FILTERS: Final = {
    "hospital_id": "hospital_id",
    "department_id": "department_id",
    "doctor_id": "doctor_id",
    "date": "visit_date",
}


def invalid(detail: str) -> SlotrushError:
    return SlotrushError(Code.INVALID_REQUEST, detail)


# --- bodies -----------------------------------------------------------------------------


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid("the body must be a JSON object")
    return value


def empty_object(raw: bytes) -> None:
    """The body of an action (book, cancel): nothing, or `{}`."""
    if raw and json_object(raw):
        raise invalid("this request takes no fields; send {} or nothing")


def _fields(
    obj: Mapping[str, Any], required: frozenset[str], optional: frozenset[str], where: str
) -> None:
    unknown = obj.keys() - required - optional
    if unknown:
        names = ", ".join(sorted(repr(name[:64]) for name in unknown)[:5])
        raise invalid(f"{where}unknown field(s) {names}")
    missing = required - obj.keys()
    if missing:
        raise invalid(f"{where}missing field(s) {', '.join(sorted(missing))}")


def schedules_in(obj: dict[str, Any]) -> list[ScheduleIn]:
    """`ScheduleIn` or `{"schedules": [ScheduleIn, ...]}` (1..10,000 of them)."""
    if "schedules" not in obj:
        return [schedule_in(obj, "")]
    _fields(obj, frozenset({"schedules"}), frozenset(), "")
    items = obj["schedules"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise invalid(f"schedules must be a list of 1..{MAX_BATCH} schedules")
    return [schedule_in(item, f"schedules[{i}].") for i, item in enumerate(items)]


def schedule_in(obj: object, where: str) -> ScheduleIn:
    if not isinstance(obj, dict):
        raise invalid(f"{where.rstrip('.') or 'the body'} must be an object")
    _fields(obj, _SCHEDULE_FIELDS, _SCHEDULE_OPTIONAL, where)
    opens_at = obj.get("opens_at")
    return ScheduleIn(
        hospital_id=entity_id(obj["hospital_id"], where + "hospital_id"),
        department_id=entity_id(obj["department_id"], where + "department_id"),
        doctor_id=entity_id(obj["doctor_id"], where + "doctor_id"),
        visit_date=iso_date(obj["visit_date"], where + "visit_date"),
        period=period(obj["period"], where + "period"),
        capacity=integer(obj["capacity"], where + "capacity", 1, MAX_CAPACITY),
        fee_cents=integer(obj.get("fee_cents", 0), where + "fee_cents", 0, MAX_BIGINT),
        # Absent means "open now"; null is not a time and is refused like any other non-time.
        opens_at=None if "opens_at" not in obj else rfc3339_time(opens_at, where + "opens_at"),
    )


def rules(obj: dict[str, Any]) -> Rules:
    _fields(obj, frozenset(), _RULES_FIELDS, "")
    defaults = Rules()
    return Rules(
        max_per_day=integer(obj.get("max_per_day", defaults.max_per_day), "max_per_day", 1),
        max_per_department_per_day=integer(
            obj.get("max_per_department_per_day", defaults.max_per_department_per_day),
            "max_per_department_per_day",
            1,
        ),
        cancel_cutoff_minutes=integer(
            obj.get("cancel_cutoff_minutes", defaults.cancel_cutoff_minutes),
            "cancel_cutoff_minutes",
            0,
        ),
    )


def blacklist_until(obj: dict[str, Any]) -> dt.datetime:
    _fields(obj, frozenset({"until"}), frozenset(), "")
    return rfc3339_time(obj["until"], "until")


# --- values -----------------------------------------------------------------------------


def entity_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise invalid(f"{field} must be 1..64 characters of [A-Za-z0-9._-]")
    return value


def integer(value: object, field: str, low: int, high: int = MAX_INT) -> int:
    # JSON Schema's integer includes numbers with a zero fraction (325.0); bool is an int in
    # Python, never in this API.
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or not low <= value <= high:
        raise invalid(f"{field} must be an integer in {low}..{high}")
    return value


def period(value: object, field: str) -> Period:
    if not isinstance(value, str) or value not in _PERIODS:
        raise invalid(f"{field} must be one of {', '.join(p.value for p in Period)}")
    return Period(value)


def iso_date(value: object, field: str) -> dt.date:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise invalid(f"{field} must be a date YYYY-MM-DD")


def rfc3339_time(value: object, field: str) -> dt.datetime:
    """An RFC 3339 time with an offset, as UTC."""
    if isinstance(value, str) and _TIME.fullmatch(value):
        try:
            return dt.datetime.fromisoformat(value.upper()).astimezone(dt.UTC)
        except (ValueError, OverflowError):
            pass
    raise invalid(f"{field} must be an RFC 3339 time such as 2030-01-31T08:00:00Z")


# --- paths, queries and headers -----------------------------------------------------------


def path_id(raw: str, not_found: Code) -> int:
    """A schedule or booking id from a path; any other text names nothing: `not_found`."""
    if _CANONICAL_ID.fullmatch(raw):
        number = int(raw)
        if number <= MAX_BIGINT:
            return number
    raise SlotrushError(not_found)


def schedule_filters(query: MultiMapping[str]) -> dict[str, Any]:
    """Keyword arguments of BookingService.list_schedules from the query string."""
    filters: dict[str, Any] = {}
    for name in query:
        target = _FILTERS.get(name)
        if target is None:
            raise invalid(f"unknown query parameter {name[:64]!r}")
        values = query.getall(name)
        if len(values) > 1:
            raise invalid(f"query parameter {name} is given more than once")
        value = values[0]
        filters[target] = iso_date(value, name) if name == "date" else entity_id(value, name)
    return filters


def idempotency_key(headers: MultiMapping[str]) -> str | None:
    values = headers.getall("Idempotency-Key", ())
    if not values:
        return None
    if len(values) > 1 or not _IDEMPOTENCY_KEY.fullmatch(values[0]):
        raise invalid("Idempotency-Key must be one header of 1..128 printable ASCII characters")
    return values[0]
