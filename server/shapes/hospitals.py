"""Hospitals, departments and doctors as resources (API.md 1.1, Management).

What an administrator PUTs and what GET answers; a field left out of a PUT takes its default.
Every value the schemas allow is accepted: the time zone is one of the names of the server's
zone database, listed in the document.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import Meta

from core.hospitals import Hospital as _Hospital
from core.localtime import ZONE_NAMES
from server.shapes import CutoffMinutes, EntityId, FeeCents, Shape

MAX_NAME: Final = 200
_DEFAULT: Final = _Hospital(id="-", name="-")

# Printable text: no control characters, which no name or title needs.
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME, pattern=r"^[^\x00-\x1f\x7f]+\Z")]
Title = Annotated[str, Meta(max_length=MAX_NAME, pattern=r"^[^\x00-\x1f\x7f]*\Z")]
# A Literal of every name, so the document lists them and a front end can offer them.
TimeZone = Annotated[
    Literal[tuple(sorted(ZONE_NAMES))],  # type: ignore[valid-type]
    Meta(description="An IANA time zone: visit dates and local times are the hospital's."),
]
LocalTime = Annotated[
    str,
    Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z", description="HH:MM, the hospital's time."),
]
PaymentWindowMinutes = Annotated[
    int, Meta(ge=1, le=1440, description="An unpaid hold expires this many minutes after.")
]
WebhookUrl = Annotated[
    str,
    Meta(
        max_length=2048,
        pattern=r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?([/?#][!-~]*)?\Z",
        description="Where the hospital's notifications are delivered (http or https).",
    ),
]


class HospitalIn(Shape):
    name: Name
    timezone: TimeZone
    settle_at: Annotated[LocalTime, Meta(description="Day-end settlement, local time.")] = (
        f"{_DEFAULT.settle_at:%H:%M}"
    )
    cancel_cutoff_minutes: CutoffMinutes = _DEFAULT.cancel_cutoff_minutes
    payment_window_minutes: PaymentWindowMinutes = _DEFAULT.payment_window_minutes
    webhook_url: WebhookUrl | None = _DEFAULT.webhook_url


class Hospital(Shape):
    id: EntityId
    name: Name
    timezone: TimeZone
    settle_at: LocalTime
    cancel_cutoff_minutes: CutoffMinutes
    payment_window_minutes: PaymentWindowMinutes
    webhook_url: WebhookUrl | None


class DepartmentIn(Shape):
    name: Name


class Department(Shape):
    id: EntityId
    hospital_id: EntityId
    name: Name


class DoctorIn(Shape):
    name: Name
    department_id: Annotated[EntityId, Meta(description="A department of the same hospital.")]
    title: Title = ""
    fee_cents: FeeCents = 0


class Doctor(Shape):
    id: EntityId
    hospital_id: EntityId
    name: Name
    title: Title
    department_id: Annotated[
        EntityId | None, Meta(description="null until the doctor is placed in a department.")
    ]
    fee_cents: FeeCents
