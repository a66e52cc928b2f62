"""Micro-benchmarks: one strategy's per-booking work, and the pieces of a request's path.

    make microbench    (pytest bench --benchmark-only --benchmark-json=results/...)

Strategies run in-process against the real Redis and PostgreSQL of the test suite, each on a
fresh database; every round books a new patient on a schedule that never runs out, so the
figure is the uncontended cost of one booking (the flash-crowd figures are `slotrush bench`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import uuid

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp.typedefs import Handler
from pytest_benchmark.fixture import BenchmarkFixture

from core.booking import BookingService
from core.domain import Booking, BookingRequest, BookingStatus, Period, ScheduleIn
from core.settings import Settings
from core.stores import Stores
from core.tokens import TokenVerifier, issue_token
from server import shapes
from server.cors import cors, parse_origins
from server.encoding import booking_out, dumps
from server.fastpath import sold_out_response
from server.metrics import HttpMetrics
from server.middlewares import problems_and_metrics
from server.problems import problem_body
from strategies import STRATEGIES

SECRET = "micro-benchmark-secret-of-enough-bytes-0123456789"
# Rounds per strategy: enough for stable medians, few enough for a 2-core machine.
BOOKING_ROUNDS = 300


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_book_one_number(
    benchmark: BenchmarkFixture,
    name: str,
    bench_stores: Stores,
    loop: asyncio.AbstractEventLoop,
) -> None:
    strategy = STRATEGIES[name](bench_stores)
    service = BookingService(strategy, bench_stores.ledger)
    loop.run_until_complete(strategy.start())
    try:
        (view,) = loop.run_until_complete(service.create_schedules([_schedule()]))
        patients = (f"micro-{i}" for i in itertools.count())

        def request() -> tuple[tuple[BookingRequest], dict[str, object]]:
            req = BookingRequest(view.schedule, next(patients), str(uuid.uuid4()))
            return (req,), {}

        def book(req: BookingRequest) -> object:
            return loop.run_until_complete(strategy.book(req))

        result = benchmark.pedantic(book, setup=request, rounds=BOOKING_ROUNDS, iterations=1)
        assert getattr(result, "number", None) is not None, result
    finally:
        loop.run_until_complete(strategy.close())


def test_verify_token_first_sight(benchmark: BenchmarkFixture) -> None:
    """A token the process has not seen, as every request of a flash crowd brings: a full
    HS256 verification by a server that has verified its issuer's tokens before."""
    verifier = TokenVerifier(SECRET)
    verifier.verify(issue_token(SECRET, subject="patient-0"))
    patients = (f"patient-{i}" for i in itertools.count(1))

    def new_token() -> tuple[tuple[str], dict[str, object]]:
        return (issue_token(SECRET, subject=next(patients)),), {}

    principal = benchmark.pedantic(verifier.verify, setup=new_token, rounds=2000)
    assert principal.subject is not None and principal.subject.startswith("patient-")


def test_verify_token_seen_before(benchmark: BenchmarkFixture) -> None:
    """A token verified before: the cache answers."""
    verifier = TokenVerifier(SECRET)
    token = issue_token(SECRET, subject="patient-1")
    verifier.verify(token)
    assert benchmark(verifier.verify, token).subject == "patient-1"


def test_encode_booking(benchmark: BenchmarkFixture) -> None:
    booking = Booking(
        id=123456,
        schedule_id=42,
        patient_id="patient-1",
        hospital_id="h1",
        department_id="cardiology",
        doctor_id="dr-lee",
        visit_date=dt.date(2030, 1, 2),
        period=Period.AM,
        number=17,
        verification_code="ABCD2345",
        status=BookingStatus.BOOKED,
        fee_cents=0,
        created_at=dt.datetime.now(dt.UTC),
        cancelled_at=None,
    )
    body = benchmark(lambda: dumps(shapes.BookingEnvelope(booking=booking_out(booking))))
    assert b'"number":17' in body


def test_problem_body(benchmark: BenchmarkFixture) -> None:
    """A problem with a detail is encoded per answer (those without are encoded once)."""
    body = benchmark(problem_body, "already_booked", "the patient holds a number already")
    assert b'"code":"already_booked"' in body


def test_sold_out_answer(benchmark: BenchmarkFixture) -> None:
    """What the sold-out fast path costs per answer, short of the socket."""
    assert benchmark(sold_out_response).status == 409


@pytest.mark.parametrize("origins", ["", "http://127.0.0.1:3000"], ids=["no CORS", "CORS"])
def test_sold_out_answer_through_the_middlewares(benchmark: BenchmarkFixture, origins: str) -> None:
    """The sold-out answer as a browser's request meets it, through every middleware the
    server installs: without CORS, and with CORS on for the request's Origin."""
    middlewares = [problems_and_metrics(HttpMetrics(), Settings())]
    if origins:
        middlewares.insert(0, cors(parse_origins(origins)))
    handler: Handler = _answer_sold_out
    for middleware in reversed(middlewares):
        handler = functools.partial(middleware, handler=handler)
    request = make_mocked_request(
        "POST", "/v1/schedules/1/bookings", headers={"Origin": "http://127.0.0.1:3000"}
    )

    def answer() -> web.StreamResponse:
        # Nothing in the chain waits, so the coroutine finishes on its first step (the
        # request deadline only arms a timer of the running loop).
        try:
            handler(request).send(None)
        except StopIteration as done:
            response: web.StreamResponse = done.value
            return response
        raise AssertionError("the sold-out answer waited for something")

    async def in_a_running_loop() -> web.StreamResponse:
        return benchmark(answer)

    response = asyncio.run(in_a_running_loop())
    assert response.status == 409
    assert ("Access-Control-Allow-Origin" in response.headers) == bool(origins)


async def _answer_sold_out(request: web.Request) -> web.StreamResponse:
    return sold_out_response()


def _schedule() -> ScheduleIn:
    return ScheduleIn(
        hospital_id="micro-h",
        department_id="micro-d",
        doctor_id="micro-doc",
        visit_date=dt.date.today() + dt.timedelta(days=1),
        period=Period.AM,
        capacity=100_000,
        opens_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )
