"""Every JSON shape of API.md, defined once as a msgspec Struct: the common types and the v1
shapes here, each later area's shapes in a module of this package beside it.

The same Struct decodes and validates what a client sends (strict types, unknown fields
refused, bounds and patterns checked: see server.validation), is what the server encodes
(server.encoding), becomes a schema of the OpenAPI document (`schemas`) and is what the tests
check answers against. Struct docstrings and `Meta` descriptions are published in the document.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from core import domain, paging
from core.domain import BookingStatus, CancelledBy, PaymentStatus, Period, ScheduleStatus

MAX_BATCH: Final = 10_000
MAX_CAPACITY: Final = 100_000
MAX_BIGINT: Final = 2**63 - 1
MAX_INT: Final = 2**31 - 1

# msgspec checks a pattern with Python's re.search, where `$` also matches before a final
# newline; `\Z` is the end of the string. `schemas` spells it `$`, as JSON Schema does.
ID_PATTERN: Final = rf"^{domain.ID_PATTERN.pattern}\Z"
SERIAL_PATTERN: Final = r"^[1-9][0-9]{0,18}\Z"
# RFC 3339 with an offset, years 1000..8999: far enough from the ends of Python's calendar
# that no offset can push a time off it.
TIME_PATTERN: Final = (
    r"^[1-8][0-9]{3}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)
IDEMPOTENCY_KEY_PATTERN: Final = r"^[ -~]{1,128}\Z"
CURSOR_PATTERN: Final = r"^[A-Za-z0-9_-]{1,1024}\Z"
REF_TEMPLATE: Final = "#/components/schemas/{name}"
_PYTHON_END: Final = re.compile(r"\\Z$")

# A hospital information system's own id (hospital, department, doctor, patient).
EntityId = Annotated[str, Meta(pattern=ID_PATTERN)]
# A schedule or booking id: a positive bigint, as a string (JavaScript cannot hold them all).
Serial = Annotated[str, Meta(pattern=SERIAL_PATTERN)]
# A time a client sends; server.validation turns it into UTC once it is known to be a real one.
Time = Annotated[str, Meta(pattern=TIME_PATTERN, extra_json_schema={"format": "date-time"})]
IdempotencyKey = Annotated[str, Meta(pattern=IDEMPOTENCY_KEY_PATTERN)]
# A file of the front end (server.assets): a plain name with its extension.
AssetName = Annotated[str, Meta(pattern=r"^[a-z0-9-]+\.(js|css|svg)$")]
Capacity = Annotated[int, Meta(ge=1, le=MAX_CAPACITY)]
FeeCents = Annotated[int, Meta(ge=0, le=MAX_BIGINT)]
AtLeastOne = Annotated[int, Meta(ge=1, le=MAX_INT)]
CutoffMinutes = Annotated[
    int,
    Meta(
        ge=0,
        le=domain.MAX_CANCEL_CUTOFF_MINUTES,
        description="Cancelling closes this many minutes before the visit starts; 0: never.",
    ),
]

# Pagination (API.md 1.1: every list is cursor-paginated).
Limit = Annotated[
    int, Meta(ge=1, le=paging.MAX_LIMIT, description="Rows per page, at most this many.")
]
Cursor = Annotated[
    str,
    Meta(
        pattern=CURSOR_PATTERN,
        description="The `next_cursor` of the page before, as it came: opaque.",
    ),
]
NextCursor = Annotated[
    str | None,
    Meta(description="Pass as `cursor` for the next page; null: this is the last page."),
]

_DEFAULT_RULES: Final = domain.Rules()


# gc=False: a shape holds decoded JSON or domain values, never a cycle, so the garbage collector
# need not track the thousands a busy second makes.
class Shape(Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A JSON object of the API: any field it does not name is refused."""


# --- what clients send ------------------------------------------------------------------


class NoFields(Shape):
    """The body of an action (book, cancel): nothing, or `{}`."""


class ScheduleIn(Shape):
    hospital_id: EntityId
    department_id: EntityId
    doctor_id: EntityId
    visit_date: dt.date
    period: Period
    capacity: Capacity
    fee_cents: FeeCents = 0
    # Absent means "open now"; null is not a time and is refused like any other non-time.
    opens_at: (
        Annotated[Time, Meta(description="Bookable from then on; default: when created.")]
        | UnsetType
    ) = UNSET
    external_id: (
        Annotated[
            EntityId,
            Meta(
                description=(
                    "The hospital information system's own id of the session (an extension): "
                    "a live schedule of the hospital with this id is updated, not duplicated."
                )
            ),
        ]
        | UnsetType
    ) = UNSET


class ScheduleBatchIn(Shape):
    schedules: Annotated[list[ScheduleIn], Meta(min_length=1, max_length=MAX_BATCH)]


class Rules(Shape):
    """A hospital's rules; a field left out takes its default."""

    max_per_day: AtLeastOne = _DEFAULT_RULES.max_per_day
    max_per_department_per_day: AtLeastOne = _DEFAULT_RULES.max_per_department_per_day
    cancel_cutoff_minutes: CutoffMinutes = _DEFAULT_RULES.cancel_cutoff_minutes


class BlacklistIn(Shape):
    until: Time


class PageQuery(Shape):
    """The pagination parameters every list takes."""

    limit: Limit = paging.DEFAULT_LIMIT
    cursor: Cursor | UnsetType = UNSET


class ScheduleFilters(PageQuery):
    """The query of GET /v1/schedules: every filter is optional; `from`, `to`, `period` and
    `status` are extensions of v1."""

    hospital_id: EntityId | UnsetType = UNSET
    department_id: EntityId | UnsetType = UNSET
    doctor_id: EntityId | UnsetType = UNSET
    visit_date: Annotated[dt.date, Meta(description="Filters visit_date.")] | UnsetType = (
        msgspec.field(default=UNSET, name="date")
    )
    visit_from: (
        Annotated[dt.date, Meta(description="visit_date on or after this date.")] | UnsetType
    ) = msgspec.field(default=UNSET, name="from")
    visit_to: (
        Annotated[dt.date, Meta(description="visit_date on or before this date.")] | UnsetType
    ) = msgspec.field(default=UNSET, name="to")
    period: Period | UnsetType = UNSET
    status: ScheduleStatus | UnsetType = UNSET


# Path parameters by name: lookup ids are canonical positive integers, the rest are HIS ids.
PATH_PARAMETERS: Final[dict[str, Any]] = {
    "schedule_id": Serial,
    "booking_id": Serial,
    "notification_id": Serial,
    "hospital_id": EntityId,
    "patient_id": EntityId,
    "department_id": EntityId,
    "doctor_id": EntityId,
    "asset": AssetName,
    # A payment provider's name, as webhooks name it (API.md 1.1, Payments).
    "provider": Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}\Z")],
}


# --- what the server answers ------------------------------------------------------------


class Schedule(Shape):
    id: Serial
    hospital_id: EntityId
    department_id: EntityId
    doctor_id: EntityId
    visit_date: dt.date
    period: Period
    capacity: Capacity
    fee_cents: FeeCents
    opens_at: dt.datetime
    remaining: Annotated[int, Meta(ge=0, description="May lag by up to one second.")]
    status: Annotated[
        ScheduleStatus,
        Meta(
            description=(
                "`closed` (an extension of v1): the visit date has passed in the hospital's "
                "time zone, or its hospital, department or doctor was deleted; `suspended` (an "
                "extension of 1.1): the hospital stopped the session."
            )
        ),
    ]
    external_id: Annotated[
        EntityId | None,
        Meta(description="The hospital information system's id of the session, if it has one."),
    ] = None


class ScheduleList(Shape):
    schedules: list[Schedule]


class SchedulePage(Shape):
    """A page of schedules in id order. A page filtered by `status` may hold fewer than
    `limit` (even none) and still go on: follow `next_cursor` until it is null."""

    schedules: list[Schedule]
    next_cursor: NextCursor


class Payment(Shape):
    """The booking's money (API.md 1.1). `none` until a payment is asked for."""

    status: PaymentStatus
    amount_cents: FeeCents
    provider: str | None
    provider_ref: str | None


class Booking(Shape):
    id: Serial
    schedule_id: Serial
    patient_id: EntityId
    hospital_id: EntityId
    department_id: EntityId
    doctor_id: EntityId
    visit_date: dt.date
    period: Period
    number: Annotated[int, Meta(ge=1)]
    verification_code: Annotated[str, Meta(min_length=6)]
    status: Annotated[
        BookingStatus,
        Meta(
            description=(
                "`pending_payment` holds the number until `hold_expires_at` (a paid schedule); "
                "`booked`, `attended` and `no_show` hold it; `cancelled` and `expired` do not."
            )
        ),
    ]
    fee_cents: FeeCents
    hold_expires_at: Annotated[
        dt.datetime | None,
        Meta(description="When an unpaid hold lapses; null for a free schedule."),
    ]
    created_at: dt.datetime
    cancelled_at: dt.datetime | None
    cancelled_by: CancelledBy | None
    payment: Payment


class BookingEnvelope(Shape):
    booking: Booking


class BookingPage(Shape):
    """A page of bookings, newest first."""

    bookings: list[Booking]
    next_cursor: NextCursor


class BlacklistEntry(Shape):
    hospital_id: EntityId
    patient_id: EntityId
    until: dt.datetime


class AuditSchedule(Shape):
    id: Serial
    capacity: int
    booked: int
    remaining: int
    oversold: bool


class Audit(Shape):
    """The invariants of API.md, counted in PostgreSQL."""

    schedules: list[AuditSchedule]
    oversold: int
    duplicate_numbers: int
    duplicate_patients: int
    limit_violations: int


class Health(Shape):
    status: Literal["ok"]
    strategy: str


class Problem(Struct, frozen=True):
    """RFC 9457 problem details. Clients branch on `code`, never on `title`."""

    type: Literal["about:blank"]
    title: str
    status: int
    code: str
    detail: str | UnsetType = UNSET


# --- the document's schemas ---------------------------------------------------------------


def schemas(*types: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The schema of each type (a reference for a Struct) and every Struct they refer to,
    by name, as JSON Schema for an OpenAPI 3.1 document."""
    refs, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    return [_ecma_patterns(r) for r in refs], _ecma_patterns(components)


def schema(value_type: Any) -> dict[str, Any]:
    """The JSON Schema of a type that is not a Struct (a Struct's would be a reference)."""
    (one,), _ = schemas(value_type)
    return one


def ref(shape: type[Struct]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(name=shape.__name__)}


def _ecma_patterns(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _PYTHON_END.sub("$", value)
            if key == "pattern" and isinstance(value, str)
            else _ecma_patterns(value)
            for key, value in node.items()
        }
    if isinstance(node, list | tuple):
        return [_ecma_patterns(value) for value in node]
    return node
