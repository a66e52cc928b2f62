"""The registration lifecycle through HTTP (API.md 1.1): holds, their expiry through the
sold-out fast path, check-in, day-end settlement (also when the server dies in the middle of
one) and suspension."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from bench.embedded import ServiceUrls
from core.failpoints import SETTLE_AFTER_BATCH
from core.lifecycle.settlement import BATCH
from server import shapes
from server.shapes import lifecycle as lifecycle_shapes
from tests.http.conftest import (
    Client,
    ServeFn,
    admin_token,
    fill,
    patient_token,
    server_env,
    start_server,
    unique,
)
from tests.scenarios import utc_today


async def booked(api: Client, schedule_id: str, patient: str) -> dict[str, object]:
    answer = await api.book(schedule_id, patient)
    assert answer.status == 201, answer.body
    answer.shaped(shapes.BookingEnvelope)
    booking: dict[str, object] = answer.json["booking"]
    return booking


async def test_a_paid_schedule_answers_a_hold_with_its_payment(api: Client) -> None:
    schedule = await api.create_schedule(fee_cents=1800, capacity=2)

    hold = await booked(api, schedule["id"], unique("p"))

    assert hold["status"] == "pending_payment" and hold["hold_expires_at"] is not None
    assert (hold["fee_cents"], hold["doctor_id"], hold["period"]) == (1800, "dr-lee", "am")
    assert hold["payment"] == {
        "status": "none",
        "amount_cents": 1800,
        "provider": None,
        "provider_ref": None,
    }
    assert hold["cancelled_by"] is None


async def test_a_lapsed_hold_is_bookable_again_through_the_sold_out_memory(
    api: Client, shared_ledger: asyncpg.Connection
) -> None:
    schedule = await api.create_schedule(fee_cents=1800, capacity=1)
    hold = await booked(api, schedule["id"], unique("p"))
    latecomer = unique("p")
    (await api.book(schedule["id"], latecomer)).problem(409, "sold_out")

    await shared_ledger.execute(
        "UPDATE bookings SET hold_expires_at = now() WHERE id = $1", int(str(hold["id"]))
    )
    started = time.monotonic()
    while (answer := await api.book(schedule["id"], latecomer)).status != 201:
        answer.problem(409, "sold_out")
        assert time.monotonic() - started < 5.0, "the lapsed hold's number never came back"
        await asyncio.sleep(0.1)

    assert answer.json["booking"]["number"] == hold["number"]
    path = f"/v1/bookings/{hold['id']}"
    lapsed = await api.call("GET", path, token=patient_token(str(hold["patient_id"])))
    assert lapsed.json["booking"]["status"] == "expired"
    cancel = await api.call("POST", path + "/cancel", token=patient_token(str(hold["patient_id"])))
    cancel.problem(409, "invalid_state")


async def test_check_in_at_the_counter(api: Client) -> None:
    schedule = await api.create_schedule(visit_date=utc_today().isoformat())
    hospital = schedule["hospital_id"]
    booking = await booked(api, schedule["id"], unique("p"))
    path = f"/v1/hospitals/{hospital}/check-ins"
    staff = admin_token()

    answer = await api.call(
        "POST", path, token=staff, json={"verification_code": booking["verification_code"]}
    )

    assert answer.status == 200, answer.body
    assert answer.shaped(shapes.BookingEnvelope).booking.status == "attended"
    again = await api.call(
        "POST", path, token=staff, json={"verification_code": booking["verification_code"]}
    )
    again.problem(404, "booking_not_found")
    (await api.call("POST", path, token=staff, json={"verification_code": "no"})).problem(
        400, "invalid_request"
    )


async def test_wrong_codes_are_rate_limited(api: Client) -> None:
    schedule = await api.create_schedule(visit_date=utc_today().isoformat())
    path = f"/v1/hospitals/{schedule['hospital_id']}/check-ins"
    for _ in range(10):
        wrong = await api.call(
            "POST", path, token=admin_token(), json={"verification_code": "WRONG234"}
        )
        wrong.problem(404, "booking_not_found")

    limited = await api.call(
        "POST", path, token=admin_token(), json={"verification_code": "WRONG234"}
    )

    limited.problem(429, "rate_limited", frozenset({"detail"}))
    assert 0 < int(limited.headers["Retry-After"]) <= 300


async def test_day_end_settles_the_date_and_answers_its_counts(api: Client) -> None:
    schedule = await api.create_schedule(visit_date=utc_today().isoformat(), capacity=5)
    hospital = schedule["hospital_id"]
    missed = [await booked(api, schedule["id"], unique("p")) for _ in range(3)]
    path = f"/v1/admin/hospitals/{hospital}/day-end"

    answer = await api.call(
        "POST", path, token=admin_token(), json={"date": utc_today().isoformat()}
    )

    assert answer.status == 200, answer.body
    settled = answer.shaped(lifecycle_shapes.Settlement)
    assert (settled.hospital_id, settled.date.isoformat(), settled.no_shows) == (
        hospital,
        utc_today().isoformat(),
        3,
    )
    first = missed[0]
    seen = await api.call(
        "GET", f"/v1/bookings/{first['id']}", token=patient_token(str(first["patient_id"]))
    )
    assert seen.json["booking"]["status"] == "no_show"
    again = await api.call(
        "POST", path, token=admin_token(), json={"date": utc_today().isoformat()}
    )
    assert again.json == answer.json
    later = (utc_today() + dt.timedelta(days=2)).isoformat()
    (await api.call("POST", path, token=admin_token(), json={"date": later})).problem(
        409, "invalid_state", frozenset({"detail"})
    )


async def test_suspension_cancels_the_bookings_and_closes_the_schedule(api: Client) -> None:
    schedule = await api.create_schedule(capacity=3)
    booking = await booked(api, schedule["id"], unique("p"))
    path = f"/v1/admin/schedules/{schedule['id']}/suspend"

    answer = await api.call("POST", path, token=admin_token(), json={"reason": "doctor ill"})

    assert answer.status == 200, answer.body
    assert answer.shaped(shapes.Schedule).status == "suspended"
    assert answer.json["remaining"] == 3
    owner = patient_token(str(booking["patient_id"]))
    seen = await api.call("GET", f"/v1/bookings/{booking['id']}", token=owner)
    assert (seen.json["booking"]["status"], seen.json["booking"]["cancelled_by"]) == (
        "cancelled",
        "hospital",
    )
    (await api.book(schedule["id"], unique("p"))).problem(409, "schedule_closed")
    again = await api.call("POST", path, token=admin_token(), json={"reason": "again"})
    assert again.status == 200 and again.json["status"] == "suspended"


@pytest.mark.parametrize("strategy", ["pg-pessimistic", "redis-lua"])
async def test_a_server_killed_mid_settlement_settles_each_booking_once_after_restart(
    serve: ServeFn,
    service_urls: ServiceUrls,
    test_database_url: str,
    redis_prefix: str,
    tmp_path: Path,
    session: aiohttp.ClientSession,
    strategy: str,
) -> None:
    switch = tmp_path / "kill-now"
    env = server_env(
        service_urls.redis_url,
        test_database_url,
        redis_prefix,
        SLOTRUSH_FAILPOINTS=f"{SETTLE_AFTER_BATCH}:{switch}",
    )
    doomed = await start_server(env, tmp_path / "doomed.log", "--strategy", strategy)
    try:
        api = Client(session, doomed.url)
        total = 2 * BATCH + 100
        schedule = await api.create_schedule(visit_date=utc_today().isoformat(), capacity=total)
        conn = await asyncpg.connect(test_database_url)
        try:
            await fill(conn, schedule["id"])
            switch.touch()
            path = f"/v1/admin/hospitals/{schedule['hospital_id']}/day-end"
            with pytest.raises(aiohttp.ClientError):
                await api.call(
                    "POST", path, token=admin_token(), json={"date": utc_today().isoformat()}
                )
            assert await doomed.process.wait() != 0
            after_crash = await conn.fetchval("SELECT no_shows FROM settlements")
            assert after_crash == BATCH
            first_batch = await conn.fetch(
                "SELECT id, settled_at FROM bookings WHERE status = 'no_show'"
            )

            restarted = await serve("--strategy", strategy)
            answer = await Client(session, restarted.url).call(
                "POST", path, token=admin_token(), json={"date": utc_today().isoformat()}
            )

            assert answer.status == 200, answer.body
            assert answer.json["no_shows"] == total
            statuses = await conn.fetch("SELECT status, count(*) FROM bookings GROUP BY status")
            assert [tuple(row) for row in statuses] == [("no_show", total)]
            # The batch settled before the crash was not settled again.
            unchanged = await conn.fetch(
                "SELECT id, settled_at FROM bookings WHERE id = ANY($1)",
                [row["id"] for row in first_batch],
            )
            assert sorted(map(tuple, unchanged)) == sorted(map(tuple, first_batch))
        finally:
            await conn.close()
    finally:
        if doomed.process.returncode is None:
            doomed.process.kill()
            await doomed.process.wait()
