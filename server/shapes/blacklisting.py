"""Automatic blacklisting and notifications as a hospital's staff see them (API.md 1.1,
Hospital operations, and the extensions of docs/API.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType

from core.blacklisting import BlacklistRules as _Rules
from core.domain import MAX_CANCEL_CUTOFF_MINUTES
from server.shapes import EntityId, PageQuery, Serial, Shape

_DEFAULT = _Rules()
Days = Annotated[int, Meta(ge=1, le=3650)]
Count = Annotated[int, Meta(ge=1, le=1000)]


class BlacklistRules(Shape):
    """Reaching either count within the window blacklists the patient for ban_days; a cancel
    later than late_cancel_minutes before the visit starts counts double. A field left out
    takes its default."""

    max_cancellations: Count = _DEFAULT.max_cancellations
    max_no_shows: Count = _DEFAULT.max_no_shows
    window_days: Days = _DEFAULT.window_days
    ban_days: Days = _DEFAULT.ban_days
    late_cancel_minutes: Annotated[int, Meta(ge=0, le=MAX_CANCEL_CUTOFF_MINUTES)] = (
        _DEFAULT.late_cancel_minutes
    )


class BreachEvent(Shape):
    booking_id: Serial
    kind: Literal["cancellation", "late_cancellation", "no_show"]
    # What it counted: 2 for a late cancellation.
    weight: Annotated[int, Meta(ge=1, le=2)]
    occurred_at: dt.datetime


class BlacklistListed(Shape):
    hospital_id: EntityId
    patient_id: EntityId
    until: dt.datetime
    source: Literal["manual", "automatic"]
    since: dt.datetime
    events: list[BreachEvent]


class BlacklistPage(Shape):
    entries: list[BlacklistListed]
    next_cursor: str | None


class WhitelistEntry(Shape):
    hospital_id: EntityId
    patient_id: EntityId
    since: dt.datetime


NotificationStatus = Literal["pending", "delivered", "dead"]


class NotificationQuery(PageQuery):
    status: NotificationStatus | UnsetType = UNSET


class Notification(Shape):
    id: Serial
    dedupe_id: str
    kind: Literal["confirmed", "reminder", "cancelled_by_hospital", "refunded", "blacklisted"]
    status: NotificationStatus
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    data: dict[str, Any]


class NotificationPage(Shape):
    notifications: list[Notification]
    next_cursor: str | None


class WebhookSecret(Shape):
    hospital_id: EntityId
    secret: Annotated[str, Meta(description="Signs Slotrush-Signature (HMAC-SHA256 key).")]
