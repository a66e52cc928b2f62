"""Answers that tell a client to come back later: busy while PostgreSQL is down (503) and
rate limits (429), both with Retry-After."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bench.embedded import EmbeddedPostgres
from tests.http.conftest import Answer, Client, ServeFn, admin_token, patient_token, unique


def retry_after(answer: Answer) -> int:
    seconds = int(answer.headers["Retry-After"])
    assert seconds >= 1
    return seconds


@pytest.fixture
def postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, to stop under the server's feet."""
    # Not tmp_path: pytest makes it 0700, which the postgres user cannot cross as root.
    workdir = Path(tempfile.mkdtemp(prefix="slotrush-http-"))
    workdir.chmod(0o755)
    server = EmbeddedPostgres(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_requests_are_busy_while_postgres_is_down(
    serve: ServeFn, session: aiohttp.ClientSession, postgres: EmbeddedPostgres
) -> None:
    served = await serve("--strategy", "pg-pessimistic", env={"DATABASE_URL": postgres.url})
    api = Client(session, served.url)
    schedule = await api.create_schedule()
    assert (await api.book(schedule["id"], unique("p"))).status == 201

    postgres.stop()
    book = await api.book(schedule["id"], unique("p"))
    book.problem(503, "busy")
    retry_after(book)
    listing = await api.call("GET", "/v1/schedules", token=admin_token())
    listing.problem(503, "busy")
    retry_after(listing)
    health = await api.call("GET", "/healthz")
    problem = health.problem(503, "busy", frozenset({"strategy", "dependencies"}))
    # pg-pessimistic uses PostgreSQL alone: Redis is none of its health's business.
    assert problem["dependencies"] == {"postgres": False}

    postgres.start()
    assert (await api.book(schedule["id"], unique("p"))).status == 201
    assert (await api.call("GET", "/healthz")).status == 200


async def test_rate_limits_per_patient_and_per_address(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    # Hourly windows: a window boundary in the middle of the test is all but impossible.
    limits = {"SLOTRUSH_RATE_LIMIT_PATIENT": "3/hour", "SLOTRUSH_RATE_LIMIT_ADDRESS": "10/hour"}
    served = await serve("--strategy", "pg-pessimistic", env=limits)
    api = Client(session, served.url)
    eager = patient_token(unique("p"))
    for _ in range(3):
        assert (await api.call("GET", "/v1/me/bookings", token=eager)).status == 200
    refused = await api.call("GET", "/v1/me/bookings", token=eager)
    refused.problem(429, "rate_limited")
    assert retry_after(refused) <= 3600

    # Seven more requests from this address (the refused one counted too), then none.
    for _ in range(6):
        answer = await api.call("GET", "/v1/me/bookings", token=patient_token(unique("p")))
        assert answer.status == 200
    crowded = await api.call("GET", "/v1/me/bookings", token=patient_token(unique("p")))
    crowded.problem(429, "rate_limited")
    # Operations endpoints are never limited.
    assert (await api.call("GET", "/healthz")).status == 200
