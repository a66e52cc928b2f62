"""Domain values as the shapes of server.shapes, encoded with msgspec.

Ids of schedules and bookings are strings on the wire (front ends must not do arithmetic on
them, and JavaScript cannot hold every bigint). Times are RFC 3339 UTC with a `Z`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any, Final

import msgspec
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from core import hospitals
from core.analytics import GroupBy, GroupOutcomes
from core.booking import ScheduleView
from core.domain import Booking, Payment, Rules
from core.his_sync.service import Report
from core.ledger import Audit
from core.lifecycle.settlement import Settlement
from core.profiles import PatientTags, Profile
from core.records import BookingRecord
from server import shapes
from server.shapes import analytics as analytics_shapes
from server.shapes import browsing as browsing_shapes
from server.shapes import his_sync as his_shapes
from server.shapes import hospitals as hospital_shapes
from server.shapes import lifecycle as lifecycle_shapes
from server.shapes import profiles as profile_shapes
from server.shapes import records as record_shapes

_ENCODER: Final = msgspec.json.Encoder()
_JSON_HEADERS: Final = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


def dumps(value: Any) -> bytes:
    return _ENCODER.encode(value)


def json_response(shape: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(shape), status=status, headers=_JSON_HEADERS)


def schedule_out(view: ScheduleView) -> shapes.Schedule:
    s = view.schedule
    return shapes.Schedule(
        id=str(s.id),
        hospital_id=s.hospital_id,
        department_id=s.department_id,
        doctor_id=s.doctor_id,
        visit_date=s.visit_date,
        period=s.period,
        capacity=s.capacity,
        fee_cents=s.fee_cents,
        opens_at=s.opens_at,
        remaining=view.remaining,
        status=view.status,
        external_id=s.external_id,
    )


def booking_out(b: Booking) -> shapes.Booking:
    return shapes.Booking(
        id=str(b.id),
        schedule_id=str(b.schedule_id),
        patient_id=b.patient_id,
        hospital_id=b.hospital_id,
        department_id=b.department_id,
        doctor_id=b.doctor_id,
        visit_date=b.visit_date,
        period=b.period,
        number=b.number,
        verification_code=b.verification_code,
        status=b.status,
        fee_cents=b.fee_cents,
        hold_expires_at=b.hold_expires_at,
        created_at=b.created_at,
        cancelled_at=b.cancelled_at,
        cancelled_by=b.cancelled_by,
        payment=payment_out(b.payment),
    )


def payment_out(p: Payment) -> shapes.Payment:
    return shapes.Payment(
        status=p.status,
        amount_cents=p.amount_cents,
        provider=p.provider,
        provider_ref=p.provider_ref,
    )


def settlement_out(s: Settlement) -> lifecycle_shapes.Settlement:
    return lifecycle_shapes.Settlement(
        hospital_id=s.hospital_id,
        date=s.visit_date,
        started_at=s.started_at,
        finished_at=s.finished_at,
        no_shows=s.no_shows,
    )


def rules_out(rules: Rules) -> shapes.Rules:
    return shapes.Rules(**dataclasses.asdict(rules))


def hospital_out(h: hospitals.Hospital) -> hospital_shapes.Hospital:
    return hospital_shapes.Hospital(
        id=h.id,
        name=h.name,
        timezone=h.timezone,
        settle_at=f"{h.settle_at:%H:%M}",
        cancel_cutoff_minutes=h.cancel_cutoff_minutes,
        payment_window_minutes=h.payment_window_minutes,
        webhook_url=h.webhook_url,
    )


def public_hospital_out(h: hospitals.Hospital) -> browsing_shapes.PublicHospital:
    return browsing_shapes.PublicHospital(
        id=h.id,
        name=h.name,
        timezone=h.timezone,
        cancel_cutoff_minutes=h.cancel_cutoff_minutes,
        payment_window_minutes=h.payment_window_minutes,
    )


def department_out(d: hospitals.Department) -> hospital_shapes.Department:
    return hospital_shapes.Department(id=d.id, hospital_id=d.hospital_id, name=d.name)


def doctor_out(d: hospitals.Doctor) -> hospital_shapes.Doctor:
    return hospital_shapes.Doctor(
        id=d.id,
        hospital_id=d.hospital_id,
        name=d.name,
        title=d.title,
        department_id=d.department_id,
        fee_cents=d.fee_cents,
    )


def audit_out(audit: Audit) -> shapes.Audit:
    return shapes.Audit(
        schedules=[
            shapes.AuditSchedule(
                id=str(s.id),
                capacity=s.capacity,
                booked=s.booked,
                remaining=s.remaining,
                oversold=s.oversold,
            )
            for s in audit.schedules
        ],
        oversold=audit.oversold,
        duplicate_numbers=audit.duplicate_numbers,
        duplicate_patients=audit.duplicate_patients,
        limit_violations=audit.limit_violations,
    )


def profile_out(profile: Profile) -> profile_shapes.Profile:
    return profile_shapes.Profile(
        patient_id=profile.patient_id,
        birth_date=profile.birth_date,
        sex=profile.sex,
        updated_at=profile.updated_at,
    )


def tags_out(tags: PatientTags) -> profile_shapes.PatientTags:
    return profile_shapes.PatientTags(
        hospital_id=tags.hospital_id, patient_id=tags.patient_id, tags=list(tags.tags)
    )


def record_out(r: BookingRecord) -> record_shapes.BookingRecord:
    return record_shapes.BookingRecord(
        id=str(r.id),
        hospital_id=r.hospital_id,
        schedule_id=str(r.schedule_id),
        patient_id=r.patient_id,
        department_id=r.department_id,
        doctor_id=r.doctor_id,
        visit_date=r.visit_date,
        period=r.period,
        number=r.number,
        status=r.status,
        fee_cents=r.fee_cents,
        created_at=r.created_at,
        cancelled_at=r.cancelled_at,
    )


def analytics_out(
    hospital_id: str,
    group_by: GroupBy,
    first_visit: dt.date,
    last_visit: dt.date,
    groups: Iterable[GroupOutcomes],
) -> analytics_shapes.Analytics:
    """The analytics answer; an open end of the date range (date.min, date.max) is null."""
    return analytics_shapes.Analytics(
        hospital_id=hospital_id,
        group_by=group_by,
        first_visit=None if first_visit == dt.date.min else first_visit,
        last_visit=None if last_visit == dt.date.max else last_visit,
        groups=[_group_out(g) for g in groups],
    )


def _group_out(g: GroupOutcomes) -> analytics_shapes.GroupOutcomes:
    return analytics_shapes.GroupOutcomes(
        group=g.group,
        bookings=g.bookings,
        attended=g.attended,
        no_shows=g.no_shows,
        cancellations=g.cancellations,
        attendance_rate=g.attendance_rate,
        no_show_rate=g.no_show_rate,
        cancellation_rate=g.cancellation_rate,
        small=g.small,
    )


def his_report_out(report: Report) -> his_shapes.HisSyncReport:
    return his_shapes.HisSyncReport(
        dry_run=report.dry_run,
        created=report.created,
        updated=report.updated,
        suspended=report.suspended,
        unchanged=report.unchanged,
        conflicts=report.conflicts,
        errors=report.errors,
        rows=[
            his_shapes.HisRow(
                action=row.action,
                line=row.line,
                external_id=row.external_id,
                schedule_id=str(row.schedule_id) if row.schedule_id is not None else None,
                changes=[his_shapes.HisChange(c.field, c.before, c.after) for c in row.changes],
                code=row.code.value if row.code is not None else None,
                reason=row.reason,
            )
            for row in report.rows
        ],
    )
