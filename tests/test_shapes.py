"""The shapes of server.shapes against what the server really encodes and publishes.

No server here: every answer the encoders build must decode as the shape the document
promises, and the document's patterns must mean what the server checks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest
from multidict import CIMultiDict

from core.booking import ScheduleView
from core.domain import Booking, BookingStatus, CancelledBy, Period, Rules, Schedule, ScheduleStatus
from core.errors import SlotrushError
from core.hospitals import Department, Doctor, Hospital
from core.ledger import Audit, ScheduleAudit
from server import shapes, validation
from server.encoding import (
    audit_out,
    booking_out,
    department_out,
    doctor_out,
    dumps,
    hospital_out,
    public_hospital_out,
    rules_out,
    schedule_out,
)
from server.endpoints import ROUTES
from server.fastpath import sold_out_response
from server.openapi import build_document
from server.problems import ALL_PROBLEMS, problem_body
from server.shapes import browsing as browsing_shapes
from server.shapes import hospitals as hospital_shapes

NOW = dt.datetime(2031, 1, 1, 8, 30, 0, 250_000, tzinfo=dt.UTC)
SCHEDULE = Schedule(
    id=2**63 - 1,
    hospital_id="h1",
    department_id="cardiology",
    doctor_id="dr.lee",
    visit_date=dt.date(2031, 1, 2),
    period=Period.NIGHT,
    capacity=100_000,
    fee_cents=1250,
    opens_at=NOW,
)


def _booking(cancelled_at: dt.datetime | None) -> Booking:
    return Booking(
        id=1,
        schedule_id=SCHEDULE.id,
        patient_id="p-1",
        hospital_id="h1",
        department_id="cardiology",
        doctor_id=SCHEDULE.doctor_id,
        visit_date=SCHEDULE.visit_date,
        period=SCHEDULE.period,
        number=17,
        verification_code="ABCD2345",
        status=BookingStatus.CANCELLED if cancelled_at else BookingStatus.PENDING_PAYMENT,
        fee_cents=SCHEDULE.fee_cents,
        created_at=NOW,
        cancelled_at=cancelled_at,
        hold_expires_at=NOW,
        cancelled_by=CancelledBy.PATIENT if cancelled_at else None,
    )


ANSWERS: list[tuple[Any, type[msgspec.Struct]]] = [
    (shapes.BookingEnvelope(booking=booking_out(_booking(None))), shapes.BookingEnvelope),
    (
        shapes.BookingPage(bookings=[booking_out(_booking(NOW))], next_cursor="abc"),
        shapes.BookingPage,
    ),
    (
        shapes.ScheduleList(
            schedules=[schedule_out(ScheduleView(SCHEDULE, 0, ScheduleStatus.SOLD_OUT))]
        ),
        shapes.ScheduleList,
    ),
    (rules_out(Rules(max_per_day=3)), shapes.Rules),
    (audit_out(Audit([ScheduleAudit(SCHEDULE.id, 2, 3)], 0, 0, 0)), shapes.Audit),
    (
        hospital_out(
            Hospital(
                "h1",
                "St. Mary's",
                "America/New_York",
                dt.time(21, 5),
                525_600,
                1440,
                "https://his.example.org/notices",
            )
        ),
        hospital_shapes.Hospital,
    ),
    (
        public_hospital_out(Hospital("h1", "St. Mary's", "Asia/Shanghai")),
        browsing_shapes.PublicHospital,
    ),
    (department_out(Department("h1", "cardiology", "心内科")), hospital_shapes.Department),
    (doctor_out(Doctor("h1", "dr.lee", "Lee", None, "", 0)), hospital_shapes.Doctor),
]


@pytest.mark.parametrize(("answer", "shape"), ANSWERS, ids=[s.__name__ for _, s in ANSWERS])
def test_every_encoded_answer_has_its_shape(answer: Any, shape: type[msgspec.Struct]) -> None:
    body = dumps(answer)
    # Decoding checks what encoding does not: types, patterns, bounds, required fields.
    assert msgspec.json.decode(body, type=shape) is not None
    assert b"+00:00" not in body, "times are UTC with a Z"


@pytest.mark.parametrize("code", sorted(ALL_PROBLEMS))
def test_every_problem_has_the_problem_shape(code: str) -> None:
    for body in (problem_body(code), problem_body(code, "a detail", {"strategy": "redis-lua"})):
        problem = msgspec.json.decode(body, type=shapes.Problem)
        assert (problem.code, problem.status) == (code, ALL_PROBLEMS[code][0])


def test_the_sold_out_answer_has_the_problem_shape() -> None:
    body = sold_out_response().body
    assert isinstance(body, bytes)
    assert msgspec.json.decode(body, type=shapes.Problem).code == "sold_out"


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return own + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_the_document_spells_patterns_as_json_schema_does() -> None:
    document = build_document(ROUTES, ((r.method, r.path, r.name) for r in ROUTES))
    patterns = _patterns(document)
    assert shapes.ID_PATTERN.replace(r"\Z", "$") in patterns
    assert all(p.startswith("^") and p.endswith("$") and r"\Z" not in p for p in patterns)


@pytest.mark.parametrize("field", ["hospital_id", "visit_date", "opens_at"])
def test_a_final_newline_is_not_the_end_of_a_value(field: str) -> None:
    # Python's `$` matches before a final newline; JSON Schema's, as published, does not.
    valid = {
        "hospital_id": "h1",
        "department_id": "d1",
        "doctor_id": "dr1",
        "visit_date": "2031-01-02",
        "period": "am",
        "capacity": 5,
        "opens_at": "2031-01-01T08:00:00Z",
    }
    assert validation.schedules_in(msgspec.json.encode(valid))
    with pytest.raises(SlotrushError) as refused:
        validation.schedules_in(msgspec.json.encode({**valid, field: valid[field] + "\n"}))
    assert refused.value.detail is not None and refused.value.detail.startswith(field)


@pytest.mark.parametrize(
    "check",
    [
        lambda raw: validation.entity_id(raw, "hospital_id"),
        lambda raw: validation.idempotency_key(CIMultiDict({"Idempotency-Key": raw})),
    ],
    ids=["admin path id", "Idempotency-Key"],
)
def test_a_final_newline_ends_no_header_or_path_value(check: Any) -> None:
    assert check("h1") == "h1"
    with pytest.raises(SlotrushError):
        check("h1\n")
