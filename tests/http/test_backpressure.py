"""Backpressure: a deadline on every request, a bounded waiting room in front of the
strategy, handlers cancelled when their client leaves. Past any bound the answer is 503
busy with Retry-After, at once, and nothing keeps running for a request that was answered."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.http.conftest import Answer, Client, ServeFn, metric, patient_token, unique
from tests.slow_strategy import PAUSE

SLOW = "tests.slow_strategy:SlowStrategy"


async def timed_book(api: Client, schedule_id: str, patient: str) -> tuple[float, Answer]:
    started = time.monotonic()
    answer = await api.book(schedule_id, patient)
    return time.monotonic() - started, answer


async def bookings_of(api: Client, patient: str) -> list[object]:
    answer = await api.call("GET", "/v1/me/bookings", token=patient_token(patient))
    assert answer.status == 200
    bookings: list[object] = answer.json["bookings"]
    return bookings


async def test_past_its_deadline_a_booking_is_busy_and_nothing_runs_on(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    deadline = PAUSE / 2
    served = await serve("--strategy", SLOW, env={"SLOTRUSH_REQUEST_TIMEOUT": str(deadline)})
    api = Client(session, served.url)
    schedule = await api.create_schedule()
    patient = unique("p")

    elapsed, answer = await timed_book(api, schedule["id"], patient)
    answer.problem(503, "busy")
    assert int(answer.headers["Retry-After"]) >= 1
    assert deadline <= elapsed < PAUSE
    # Had the booking run on after the answer, it would be in the ledger by now.
    await asyncio.sleep(2 * PAUSE)
    assert await bookings_of(api, patient) == []
    assert await metric(api, "slotrush_load_shed_total", reason="deadline") == 1


async def test_a_full_waiting_room_answers_busy_at_once(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    room = {"SLOTRUSH_BOOKINGS_IN_FLIGHT": "2", "SLOTRUSH_BOOKING_QUEUE": "3"}
    served = await serve("--strategy", SLOW, env=room)
    api = Client(session, served.url)
    schedule = await api.create_schedule(capacity=20)

    crowd = asyncio.gather(*(timed_book(api, schedule["id"], unique("p")) for _ in range(10)))
    await asyncio.sleep(PAUSE / 2)
    # While the room is full, a booking is turned away right after authentication.
    path = f"/v1/schedules/{schedule['id']}/bookings"
    (await api.call("POST", path)).problem(401, "unauthorized")
    (await api.call("POST", path, token=patient_token(unique("p")))).problem(503, "busy")
    answers = await crowd
    booked = sorted(elapsed for elapsed, answer in answers if answer.status == 201)
    refused = [(elapsed, answer) for elapsed, answer in answers if answer.status != 201]
    # Two at a time, three waiting: five book, one pause after another per pair.
    assert len(booked) == 5
    assert booked[-1] >= 3 * PAUSE
    assert len(refused) == 5
    for elapsed, answer in refused:
        answer.problem(503, "busy")
        assert int(answer.headers["Retry-After"]) >= 1
        assert elapsed < PAUSE / 2
    shed = await metric(api, "slotrush_load_shed_total", reason="booking_queue_full")
    assert shed == 6


async def test_a_client_that_leaves_takes_its_booking_with_it(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    served = await serve("--strategy", SLOW)
    api = Client(session, served.url)
    schedule = await api.create_schedule()
    patient = unique("p")

    impatient = aiohttp.ClientTimeout(total=PAUSE / 4)
    async with aiohttp.ClientSession(timeout=impatient) as leaving:
        try:
            await Client(leaving, served.url).book(schedule["id"], patient)
        except TimeoutError:
            pass
        else:
            raise AssertionError("the slow strategy answered before the client left")
    await asyncio.sleep(2 * PAUSE)
    assert await bookings_of(api, patient) == []
    assert await metric(api, "slotrush_http_requests_total", route="book", status="499") == 1
    assert await metric(api, "slotrush_http_requests_total", route="book", status="503") == 0
