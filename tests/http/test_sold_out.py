"""The sold-out fast path: once a strategy has said sold out, the same bytes for everyone,
token or not, without asking the stores; a cancellation reopens the schedule at once."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg

from core.queries import query
from tests.http.conftest import Answer, Client, ServeFn, bearer, metric, patient_token, unique

# Headers a server sets per answer, not per content: Date changes every second.
PER_ANSWER = {b"Date"}
ANSWERS = 200


def wire_form(answer: Answer) -> tuple[int, tuple[tuple[bytes, bytes], ...], bytes]:
    headers = tuple((k, v) for k, v in answer.raw_headers if k not in PER_ANSWER)
    return answer.status, headers, answer.body


async def sell_out(api: Client) -> tuple[str, Answer]:
    """A schedule of one number, booked; the answer a strategy gave the next patient."""
    schedule = await api.create_schedule(capacity=1)
    assert (await api.book(schedule["id"], unique("p"))).status == 201
    first = await api.book(schedule["id"], unique("p"))
    first.problem(409, "sold_out")
    return schedule["id"], first


async def test_every_sold_out_answer_is_the_same_bytes_and_touches_no_store(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    served = await serve("--strategy", "pg-pessimistic", env={"SLOTRUSH_SOLD_OUT_TTL": "600"})
    api = Client(session, served.url)
    schedule_id, first = await sell_out(api)
    asked_strategy = await metric(api, "slotrush_booking_outcomes_total", code="sold_out")
    from_memory = await metric(api, "slotrush_sold_out_fast_path_total")

    variants = [
        {},
        bearer(patient_token(unique("p"))),
        bearer("not-a-token"),
        {"Authorization": "Basic eDp5"},
    ]
    answers = await asyncio.gather(
        *(
            api.call(
                "POST",
                f"/v1/schedules/{schedule_id}/bookings",
                headers=variants[i % len(variants)],
                data=b"{}" if i % 2 else None,
            )
            for i in range(ANSWERS)
        )
    )
    assert {wire_form(answer) for answer in answers} == {wire_form(first)}

    assert await metric(api, "slotrush_booking_outcomes_total", code="sold_out") == asked_strategy
    assert await metric(api, "slotrush_sold_out_fast_path_total") == from_memory + ANSWERS

    # A keyed request may be the retry of one that booked, so it is looked up, not answered
    # from memory; a new key still gets the very same sold-out bytes.
    keyed = await api.call(
        "POST",
        f"/v1/schedules/{schedule_id}/bookings",
        headers={"Idempotency-Key": unique("key"), **bearer(patient_token(unique("p")))},
    )
    assert wire_form(keyed) == wire_form(first)
    assert (
        await metric(api, "slotrush_booking_outcomes_total", code="sold_out") == asked_strategy + 1
    )


async def test_a_cancellation_reopens_the_schedule_at_once(api: Client) -> None:
    schedule = await api.create_schedule(capacity=1)
    holder = unique("p")
    booking = (await api.book(schedule["id"], holder)).json["booking"]
    (await api.book(schedule["id"], unique("p"))).problem(409, "sold_out")
    cancel = await api.call(
        "POST", f"/v1/bookings/{booking['id']}/cancel", token=patient_token(holder)
    )
    assert cancel.status == 200
    # Well within the one second the sold-out answer is remembered for.
    again = await api.book(schedule["id"], unique("p"))
    assert again.status == 201 and again.json["booking"]["number"] == booking["number"]


async def test_past_its_ttl_the_memory_asks_the_ledger_not_the_strategy(api: Client) -> None:
    schedule_id, _ = await sell_out(api)
    asked_strategy = await metric(api, "slotrush_booking_outcomes_total", code="sold_out")
    path = f"/v1/schedules/{schedule_id}/bookings"
    await asyncio.sleep(1.2)
    # The burst that ends a pause longer than the one second an entry lives: the ledger
    # confirms the entry once for all of it, so no request falls back to authentication
    # (a 401 here) or to the strategy.
    burst = await asyncio.gather(*(api.call("POST", path) for _ in range(50)))
    for answer in burst:
        answer.problem(409, "sold_out")
    assert await metric(api, "slotrush_booking_outcomes_total", code="sold_out") == asked_strategy


async def test_a_crowd_that_keeps_asking_is_answered_from_memory(api: Client) -> None:
    schedule_id, _ = await sell_out(api)
    asked_strategy = await metric(api, "slotrush_booking_outcomes_total", code="sold_out")
    path = f"/v1/schedules/{schedule_id}/bookings"
    # Well past the one second an entry lives: it is renewed from the ledger as it runs out,
    # so the answer never falls back to authentication (a 401 here) or to the strategy.
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        (await api.call("POST", path)).problem(409, "sold_out")
        await asyncio.sleep(0.05)
    assert await metric(api, "slotrush_booking_outcomes_total", code="sold_out") == asked_strategy


async def test_a_cancellation_elsewhere_reopens_the_schedule_within_the_ttl(
    serve: ServeFn, session: aiohttp.ClientSession, test_database_url: str
) -> None:
    served = await serve("--strategy", "pg-pessimistic")
    api = Client(session, served.url)
    schedule = await api.create_schedule(capacity=1)
    booking = (await api.book(schedule["id"], unique("p"))).json["booking"]
    (await api.book(schedule["id"], unique("p"))).problem(409, "sold_out")

    # As another server process would: in the ledger, not through this one.
    conn = await asyncpg.connect(test_database_url)
    try:
        async with conn.transaction():
            hospital_id = booking["hospital_id"]
            cancel = query("cancel_by_patient")
            assert await conn.fetchrow(cancel, hospital_id, int(booking["id"])) is not None
    finally:
        await conn.close()
    cancelled = time.monotonic()

    path = f"/v1/schedules/{schedule['id']}/bookings"
    for _ in range(150):
        answer = await api.call("POST", path)
        if answer.status != 409:
            break
        await asyncio.sleep(0.02)
    answer.problem(401, "unauthorized")
    assert time.monotonic() - cancelled < 1.5
    assert (await api.book(schedule["id"], unique("p"))).status == 201


async def test_other_schedules_are_not_affected(api: Client) -> None:
    other = await api.create_schedule(capacity=1)
    assert (await api.book(other["id"], unique("p"))).status == 201
    sold_out_id, _ = await sell_out(api)
    (await api.call("POST", f"/v1/schedules/{sold_out_id}/bookings")).problem(409, "sold_out")
    (await api.call("POST", f"/v1/schedules/{other['id']}/bookings")).problem(401, "unauthorized")
