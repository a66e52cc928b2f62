"""Micro-benchmarks of decoding what clients send: a booking request and an admin's batch.

Both go through server.validation exactly as the handlers call it: the shapes' msgspec
decoding, then the conversion to domain values.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from multidict import CIMultiDict
from pytest_benchmark.fixture import BenchmarkFixture

from core.domain import Code
from server import validation as parse

# Schedules per batch: a morning's sessions of a large hospital.
BATCH = 1_000


def test_decode_booking_body(benchmark: BenchmarkFixture) -> None:
    """The body of a booking request (`{}`)."""
    benchmark(parse.no_fields, b"{}")


def test_decode_booking_request(benchmark: BenchmarkFixture) -> None:
    """Everything a booking request carries: path id, body and Idempotency-Key."""
    headers = CIMultiDict({"Idempotency-Key": "3f1c9a7e-booking-retry-key"})

    def decode() -> tuple[int, str | None]:
        parse.no_fields(b"{}")
        return parse.path_id("123456", Code.SCHEDULE_NOT_FOUND), parse.idempotency_key(headers)

    assert benchmark(decode) == (123456, "3f1c9a7e-booking-retry-key")


def test_decode_schedule_batch(benchmark: BenchmarkFixture) -> None:
    """An admin's batch of schedules, each with every optional field."""
    raw = orjson.dumps({"schedules": [_schedule_in(i) for i in range(BATCH)]})
    items = benchmark(parse.schedules_in, raw)
    assert len(items) == BATCH and items[-1].opens_at == dt.datetime(2031, 1, 1, 7, tzinfo=dt.UTC)


def _schedule_in(i: int) -> dict[str, Any]:
    return {
        "hospital_id": "micro-h",
        "department_id": f"department-{i % 20}",
        "doctor_id": f"doctor-{i}",
        "visit_date": "2031-01-02",
        "period": "am",
        "capacity": 100,
        "fee_cents": 1250,
        "opens_at": "2031-01-01T08:00:00+01:00",
    }
