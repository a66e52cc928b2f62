"""Domain values as the JSON shapes of API.md, encoded with orjson.

Ids of schedules and bookings are strings on the wire (front ends must not do arithmetic on
them, and JavaScript cannot hold every bigint). Times are RFC 3339 UTC with a `Z`.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from core.booking import ScheduleView
from core.domain import Booking, Rules
from core.ledger import Audit

_OPTIONS: Final = orjson.OPT_UTC_Z
_JSON_HEADERS: Final = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTIONS)


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(value), status=status, headers=_JSON_HEADERS)


def schedule_json(view: ScheduleView) -> dict[str, Any]:
    s = view.schedule
    return {
        "id": str(s.id),
        "hospital_id": s.hospital_id,
        "department_id": s.department_id,
        "doctor_id": s.doctor_id,
        "visit_date": s.visit_date,
        "period": s.period,
        "capacity": s.capacity,
        "fee_cents": s.fee_cents,
        "opens_at": s.opens_at,
        "remaining": view.remaining,
        "status": view.status,
    }


def booking_json(b: Booking) -> dict[str, Any]:
    return {
        "id": str(b.id),
        "schedule_id": str(b.schedule_id),
        "patient_id": b.patient_id,
        "hospital_id": b.hospital_id,
        "department_id": b.department_id,
        "visit_date": b.visit_date,
        "number": b.number,
        "verification_code": b.verification_code,
        "status": b.status,
        "created_at": b.created_at,
        "cancelled_at": b.cancelled_at,
    }


def rules_json(rules: Rules) -> dict[str, Any]:
    return {
        "max_per_day": rules.max_per_day,
        "max_per_department_per_day": rules.max_per_department_per_day,
        "cancel_cutoff_minutes": rules.cancel_cutoff_minutes,
    }


def audit_json(audit: Audit) -> dict[str, Any]:
    return {
        "schedules": [
            {
                "id": str(s.id),
                "capacity": s.capacity,
                "booked": s.booked,
                "remaining": s.remaining,
                "oversold": s.oversold,
            }
            for s in audit.schedules
        ],
        "oversold": audit.oversold,
        "duplicate_numbers": audit.duplicate_numbers,
        "duplicate_patients": audit.duplicate_patients,
        "limit_violations": audit.limit_violations,
    }
