"""What clients send, decoded into the shapes of server.shapes and then into domain values.

Anything else is a SlotrushError(invalid_request) whose detail names the field by its path
(`schedules[3].capacity`), never its value: a hostile value is not echoed back, so the
detail is built here from the error's path, not taken from msgspec's message.

Path ids of things that are looked up (schedules, bookings) must be canonical positive
integers that fit a bigint; anything else names nothing, so it is that thing's 404. Ids of
things that are created or upserted (hospital and patient ids in admin paths) must match the
id charset, else 400.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any, Final, TypeVar

import msgspec
from multidict import MultiMapping

from core import domain, hospitals, profiles, records
from core.analytics import GroupBy
from core.domain import Code
from core.errors import SlotrushError
from core.his_sync import feed
from server import shapes
from server.shapes import analytics as analytics_shapes
from server.shapes import his_sync as his_shapes
from server.shapes import hospitals as hospital_shapes
from server.shapes import profiles as profile_shapes
from server.shapes import records as record_shapes

MAX_BODY_BYTES: Final = 64 * 1024
# 10,000 schedules of long ids do not fit 64 KiB; only an admin's batch may be this large.
MAX_BATCH_BODY_BYTES: Final = 8 * 1024 * 1024

S = TypeVar("S")
T = TypeVar("T")
D = TypeVar("D")

_NO_FIELDS: Final = msgspec.json.Decoder(shapes.NoFields)
_RULES: Final = msgspec.json.Decoder(shapes.Rules)
_BLACKLIST_IN: Final = msgspec.json.Decoder(shapes.BlacklistIn)
_HOSPITAL_IN: Final = msgspec.json.Decoder(hospital_shapes.HospitalIn)
_DEPARTMENT_IN: Final = msgspec.json.Decoder(hospital_shapes.DepartmentIn)
_DOCTOR_IN: Final = msgspec.json.Decoder(hospital_shapes.DoctorIn)
_PROFILE_IN: Final = msgspec.json.Decoder(profile_shapes.ProfileIn)
_TAGS_IN: Final = msgspec.json.Decoder(profile_shapes.TagsIn)
_HIS_FEED: Final = msgspec.json.Decoder(his_shapes.HisFeed)
_CSV_INTEGERS: Final = frozenset({"capacity", "fee_cents"})
_CSV_INTEGER: Final = re.compile(r"-?[0-9]{1,20}")
# Single strings are checked with the shapes' own patterns: msgspec.convert costs more.
_SERIAL: Final = re.compile(shapes.SERIAL_PATTERN)
_ENTITY_ID: Final = re.compile(shapes.ID_PATTERN)
_IDEMPOTENCY_KEY: Final = re.compile(shapes.IDEMPOTENCY_KEY_PATTERN)
_PAGINATION: Final = frozenset(field.name for field in msgspec.structs.fields(shapes.PageQuery))
# "<what went wrong> - at `$.schedules[3]`"; the path is absent at the top level.
_PATH: Final = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING: Final = re.compile(r"Object missing required field `(?P<name>\w+)`")


def invalid(detail: str) -> SlotrushError:
    return SlotrushError(Code.INVALID_REQUEST, detail)


# --- bodies -----------------------------------------------------------------------------


def no_fields(raw: bytes) -> None:
    """The body of an action (book, cancel): nothing, or `{}`."""
    if raw:
        decode(raw, _NO_FIELDS)


def schedules_in(raw: bytes) -> list[domain.ScheduleIn]:
    """`ScheduleIn` or `{"schedules": [ScheduleIn, ...]}` (1..10,000 of them)."""
    value = loads(raw)
    if isinstance(value, dict) and "schedules" in value:
        batch = convert(value, shapes.ScheduleBatchIn, "the body")
        return [_schedule_in(item, f"schedules[{i}].") for i, item in enumerate(batch.schedules)]
    return [_schedule_in(convert(value, shapes.ScheduleIn, "the body"), "")]


def _schedule_in(shape: shapes.ScheduleIn, where: str) -> domain.ScheduleIn:
    opens_at = shape.opens_at
    return domain.ScheduleIn(
        hospital_id=shape.hospital_id,
        department_id=shape.department_id,
        doctor_id=shape.doctor_id,
        visit_date=shape.visit_date,
        period=shape.period,
        capacity=shape.capacity,
        fee_cents=shape.fee_cents,
        opens_at=None if opens_at is msgspec.UNSET else utc_time(opens_at, where + "opens_at"),
        external_id=None if shape.external_id is msgspec.UNSET else shape.external_id,
    )


def his_feed(raw: bytes, content_type: str) -> list[feed.FeedRow | feed.RowError]:
    """A HIS schedule feed, JSON (`HisFeed`) or CSV (a header line naming the columns of
    `HisFeedRow`); each row is checked on its own (core.his_sync.feed)."""
    if content_type == his_shapes.CSV_CONTENT_TYPE:
        return feed.rows(_csv_records(raw))
    if content_type not in ("application/json", ""):
        raise invalid("Content-Type must be application/json or text/csv")
    schedules = decode(raw, _HIS_FEED).schedules
    return feed.rows(
        (line, {k: v for k, v in msgspec.structs.asdict(row).items() if v is not msgspec.UNSET})
        for line, row in enumerate(schedules, start=1)
    )


def _csv_records(raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    """(line, fields) of each line after the header; an empty cell is an absent field, a
    cell beyond the header's a field no row has."""
    try:
        reader = csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
        lines = [(reader.line_num, cells) for cells in reader]
    except (UnicodeDecodeError, csv.Error):
        raise invalid("the body is not a UTF-8 CSV file") from None
    if not lines:
        raise invalid("the CSV has no header line")
    columns = [name.strip() for name in lines[0][1]]
    if len(set(columns)) != len(columns) or not set(columns) <= set(feed.COLUMNS):
        raise invalid(f"the CSV header names each column once, of: {', '.join(feed.COLUMNS)}")
    missing = [name for name in feed.REQUIRED if name not in columns]
    if missing:
        raise invalid(f"the CSV header lacks {', '.join(missing)}")
    if len(lines) - 1 > shapes.MAX_BATCH:
        raise invalid(f"a feed has at most {shapes.MAX_BATCH} rows")
    records = []
    for line, cells in lines[1:]:
        if not any(cell.strip() for cell in cells):
            continue
        names = columns + [f"column {n}" for n in range(len(columns) + 1, len(cells) + 1)]
        # A short line leaves its last fields absent.
        cut = zip(names, cells, strict=False)
        fields = {name: _csv_cell(name, cell.strip()) for name, cell in cut}
        records.append((line, {name: value for name, value in fields.items() if value != ""}))
    return records


def _csv_cell(name: str, cell: str) -> Any:
    if name in _CSV_INTEGERS and _CSV_INTEGER.fullmatch(cell):
        return int(cell)
    return cell


def rules(raw: bytes) -> domain.Rules:
    return domain.Rules(**msgspec.structs.asdict(decode(raw, _RULES)))


def blacklist_until(raw: bytes) -> dt.datetime:
    return utc_time(decode(raw, _BLACKLIST_IN).until, "until")


def hospital_in(raw: bytes, hospital_id: str) -> hospitals.Hospital:
    shape = decode(raw, _HOSPITAL_IN)
    return hospitals.Hospital(
        id=hospital_id,
        name=shape.name,
        timezone=shape.timezone,
        # The shape's pattern admits only real times of day.
        settle_at=dt.time.fromisoformat(shape.settle_at),
        cancel_cutoff_minutes=shape.cancel_cutoff_minutes,
        payment_window_minutes=shape.payment_window_minutes,
        webhook_url=shape.webhook_url,
    )


def department_in(raw: bytes, hospital_id: str, department_id: str) -> hospitals.Department:
    return hospitals.Department(
        hospital_id=hospital_id, id=department_id, name=decode(raw, _DEPARTMENT_IN).name
    )


def doctor_in(raw: bytes, hospital_id: str, doctor_id: str) -> hospitals.Doctor:
    shape = decode(raw, _DOCTOR_IN)
    return hospitals.Doctor(
        hospital_id=hospital_id,
        id=doctor_id,
        name=shape.name,
        department_id=shape.department_id,
        title=shape.title,
        fee_cents=shape.fee_cents,
    )


def profile_in(raw: bytes, now: dt.datetime) -> tuple[dt.date, profiles.Sex | None]:
    """(birth date, sex) of a profile: a real date from 1900 to today; no sex is not stated."""
    shape = decode(raw, _PROFILE_IN)
    try:
        birth_date = dt.date.fromisoformat(shape.birth_date)
    except ValueError:
        raise invalid("birth_date must be a real date such as 1980-01-31") from None
    if birth_date > profiles.latest_birth_date(now):
        raise invalid("birth_date must not be after today")
    return birth_date, None if shape.sex is msgspec.UNSET else shape.sex


def tags_in(raw: bytes) -> list[str]:
    return decode(raw, _TAGS_IN).tags


def utc_time(time: str, field: str) -> dt.datetime:
    """A time of the shapes' Time pattern as UTC, if it names a real instant."""
    try:
        return dt.datetime.fromisoformat(time.upper()).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise invalid(f"{field} must be an RFC 3339 time such as 2030-01-31T08:00:00Z") from None


# --- paths, queries and headers -----------------------------------------------------------


def path_id(raw: str, not_found: Code) -> int:
    """A schedule or booking id from a path; any other text names nothing: `not_found`."""
    if _SERIAL.match(raw):
        number = int(raw)
        if number <= shapes.MAX_BIGINT:
            return number
    raise SlotrushError(not_found)


def entity_id(raw: str, name: str) -> str:
    """A hospital, department, doctor or patient id from an admin path."""
    if not _ENTITY_ID.match(raw):
        raise invalid(f"{name} must be 1..64 characters of [A-Za-z0-9._-]")
    return raw


def query(raw: MultiMapping[str], shape: type[S]) -> S:
    """The query string as `shape`, each parameter given at most once; numbers, dates and
    enums are converted from their text."""
    first_values = dict(raw)
    if len(first_values) != len(raw):
        raise invalid("a query parameter is given more than once")
    try:
        return msgspec.convert(first_values, shape, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid(_detail(str(exc), "the query")) from None


def filters_of(page_query: shapes.PageQuery) -> dict[str, Any]:
    """The filters a list query sets, without its pagination."""
    return {
        name: value
        for name, value in msgspec.structs.asdict(page_query).items()
        if value is not msgspec.UNSET and name not in _PAGINATION
    }


def schedule_query(filters: shapes.ScheduleFilters, within: str | None) -> domain.ScheduleQuery:
    """The filters of a schedule list; `within`: the one hospital the caller may see (its
    hospital_id filter, if any, has been checked to be that one)."""
    given = filters_of(filters)
    if within is not None:
        given["hospital_id"] = within
    return domain.ScheduleQuery(**given)


def tags_hospital(raw: MultiMapping[str]) -> str:
    return query(raw, profile_shapes.TagsQuery).hospital_id


def records_query(
    raw: MultiMapping[str], hospital_id: str
) -> tuple[records.RecordFilter, records.Position | None, int]:
    """(which records, the position the page starts after, the page's size)."""
    shape = query(raw, record_shapes.RecordQuery)
    where = records.RecordFilter(
        hospital_id=hospital_id,
        first_visit=_given(shape.first_visit, dt.date.min),
        last_visit=_given(shape.last_visit, dt.date.max),
        department_id=_given(shape.department_id, None),
        doctor_id=_given(shape.doctor_id, None),
        status=_given(shape.status, None),
    )
    cursor = shape.cursor
    # The shape's pattern admits only text that decodes; a cursor never names an error.
    after = None if cursor is msgspec.UNSET else records.Position.from_cursor(cursor)
    return where, after, shape.limit


def analytics_query(raw: MultiMapping[str]) -> tuple[GroupBy, dt.date, dt.date]:
    """(group by, first visit date, last visit date)."""
    shape = query(raw, analytics_shapes.AnalyticsQuery)
    return (
        shape.group_by,
        _given(shape.first_visit, dt.date.min),
        _given(shape.last_visit, dt.date.max),
    )


def _given(value: T | msgspec.UnsetType, default: D) -> T | D:
    return default if value is msgspec.UNSET else value


def idempotency_key(headers: MultiMapping[str]) -> str | None:
    values = headers.getall("Idempotency-Key", ())
    if not values:
        return None
    if len(values) > 1 or not _IDEMPOTENCY_KEY.match(values[0]):
        raise invalid("Idempotency-Key must be one header of 1..128 printable ASCII characters")
    return values[0]


# --- decoding -----------------------------------------------------------------------------


def decode(raw: bytes, decoder: msgspec.json.Decoder[S]) -> S:
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError:
        # Either invalid, or a number such as 325.0 where an integer belongs: see convert.
        decoded: S = convert(loads(raw), decoder.type, "the body")
        return decoded
    except msgspec.DecodeError:
        raise invalid("the body is not valid JSON") from None


def loads(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    # Deeply nested arrays exhaust the recursion limit before they are found invalid.
    except (msgspec.DecodeError, RecursionError):
        raise invalid("the body is not valid JSON") from None


def convert(value: Any, shape: Any, subject: str) -> Any:
    try:
        return msgspec.convert(value, shape)
    except msgspec.ValidationError:
        pass
    # JSON Schema's integer includes numbers with a zero fraction (325.0), msgspec's does not;
    # strings and booleans stay refused.
    try:
        return msgspec.convert(_integral(value), shape)
    except msgspec.ValidationError as exc:
        raise invalid(_detail(str(exc), subject)) from None


def _integral(value: Any) -> Any:
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is dict:
        return {k: _integral(v) for k, v in value.items()}
    if type(value) is list:
        return [_integral(v) for v in value]
    return value


def _detail(message: str, subject: str) -> str:
    """Where a value does not fit its shape, and how, without repeating the value."""
    found = _PATH.search(message)
    path = found["path"].lstrip(".") if found else ""
    where = path or subject
    missing = _MISSING.match(message)
    if missing:
        return f"{path + '.' if path else ''}{missing['name']} is required"
    if message.startswith("Object contains unknown field"):
        return f"{where} has a field this request does not take"
    return f"{where} has the wrong type, value or length; see its schema in /openapi.json"
