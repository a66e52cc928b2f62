"""Notifications (API.md 1.1): written with the change (confirmed under every strategy,
cancelled by the hospital, blacklisted, refunded, reminders), delivered to a real HTTP
receiver on a loopback port with a valid signature, retried after failures with the same
dedupe id and body, dead after the last attempt; and the ledger's session starts agreeing
with core.localtime."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiohttp import web

from core import notifications
from core.booking import BookingService
from core.domain import Period
from core.lifecycle import suspension
from core.localtime import visit_starts_at
from core.notifications import delivery, reminders, signing
from core.queries import query as q
from core.stores import Stores
from server.courier import WebhookCourier
from tests.scenarios import HOSPITAL, create, schedule_in

FAST = delivery.Policy(max_attempts=3, retry_seconds=0.0, claim_seconds=30.0)


@dataclass
class Receiver:
    """A hospital's webhook endpoint: answers `failures` 500s first, then 200s."""

    failures: int = 0
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.read(), dict(request.headers)))
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=500)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield found
    finally:
        await runner.cleanup()


@pytest.fixture
async def courier() -> AsyncIterator[WebhookCourier]:
    async with WebhookCourier(5.0) as opened:
        yield opened


async def point_webhook(stores: Stores, url: str) -> str:
    """The hospital's webhook_url set to `url`; its signing secret."""
    secret: str = await stores.pg.fetchval(
        "INSERT INTO hospitals (id, webhook_url) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE"
        " SET webhook_url = EXCLUDED.webhook_url RETURNING webhook_secret",
        HOSPITAL,
        url,
    )
    return secret


async def outbox(stores: Stores) -> list[tuple[str, str, str, int]]:
    rows = await stores.pg.fetch(
        "SELECT dedupe_id, kind, status, attempts FROM notifications ORDER BY id"
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_a_confirmed_booking_is_notified_under_every_strategy(
    service: BookingService, stores: Stores
) -> None:
    await point_webhook(stores, "http://127.0.0.1:9/hooks")
    paid, free = await create(
        service, schedule_in(capacity=2, fee_cents=100), schedule_in(doctor_id="d2", capacity=2)
    )
    hold = (await service.book("alice", paid)).booking
    booked = (await service.book("bob", free)).booking

    assert await outbox(stores) == [(f"confirmed/{booked.id}", "confirmed", "pending", 0)]
    # Paid (payments): pending_payment -> booked is a confirmation too.
    await stores.pg.execute("UPDATE bookings SET status = 'booked' WHERE id = $1", hold.id)
    assert [row[0] for row in await outbox(stores)] == [
        f"confirmed/{booked.id}",
        f"confirmed/{hold.id}",
    ]


async def test_no_webhook_url_no_notification(service: BookingService, stores: Stores) -> None:
    (sid,) = await create(service, schedule_in(capacity=2))
    await service.book("alice", sid)
    assert await outbox(stores) == []


async def test_a_suspension_notifies_delivered_signed_to_the_receiver(
    service: BookingService, stores: Stores, receiver: Receiver, courier: WebhookCourier
) -> None:
    (sid,) = await create(service, schedule_in(capacity=3))
    booking = (await service.book("alice", sid)).booking
    secret = await point_webhook(stores, receiver.url)
    schedule = await service.schedule(sid)

    await suspension.suspend(stores.pg, service.strategy, schedule, "doctor ill")
    outcome = await delivery.deliver_due(stores.pg, courier, FAST)

    assert outcome == delivery.Outcome(delivered=1, failed=0)
    ((body, headers),) = receiver.received
    assert signing.verify(secret, body, headers[signing.HEADER], time.time())
    assert not signing.verify(secret + "x", body, headers[signing.HEADER], time.time())
    sent = orjson.loads(body)
    assert sent["id"] == headers[delivery.DEDUPE_HEADER] == f"cancelled_by_hospital/{booking.id}"
    assert (sent["type"], sent["hospital_id"]) == ("cancelled_by_hospital", HOSPITAL)
    assert sent["data"]["booking"]["booking_id"] == str(booking.id)
    assert sent["data"]["booking"]["status"] == "cancelled"
    assert await outbox(stores) == [(sent["id"], "cancelled_by_hospital", "delivered", 1)]
    # Nothing is due any more.
    assert await delivery.deliver_due(stores.pg, courier, FAST) == delivery.Outcome(0, 0)


async def test_a_failed_delivery_is_retried_with_the_same_id_and_body(
    stores: Stores, receiver: Receiver, courier: WebhookCourier
) -> None:
    secret = await point_webhook(stores, receiver.url)
    receiver.failures = 2
    await write_blacklisted(stores)

    for _ in range(3):
        await delivery.deliver_due(stores.pg, courier, FAST)

    assert len(receiver.received) == 3
    bodies = {body for body, _ in receiver.received}
    ids = {headers[delivery.DEDUPE_HEADER] for _, headers in receiver.received}
    assert len(bodies) == len(ids) == 1
    for body, headers in receiver.received:
        assert signing.verify(secret, body, headers[signing.HEADER], time.time())
    ((_, kind, status, attempts),) = await outbox(stores)
    assert (kind, status, attempts) == ("blacklisted", "delivered", 3)


async def test_what_keeps_failing_is_dead_after_the_last_attempt(
    stores: Stores, receiver: Receiver, courier: WebhookCourier
) -> None:
    await point_webhook(stores, receiver.url)
    receiver.failures = 100
    await write_blacklisted(stores)

    for _ in range(5):
        await delivery.deliver_due(stores.pg, courier, FAST)

    assert len(receiver.received) == FAST.max_attempts
    row = await stores.pg.fetchrow("SELECT status, attempts, last_error FROM notifications")
    assert tuple(row) == ("dead", 3, "HTTP 500")


async def test_an_unreachable_receiver_is_a_failed_attempt(
    stores: Stores, courier: WebhookCourier
) -> None:
    # Port 9 (discard) on loopback: nothing listens there in the test machine.
    await point_webhook(stores, "http://127.0.0.1:9/hooks")
    await write_blacklisted(stores)
    outcome = await delivery.deliver_due(stores.pg, courier, FAST)
    assert outcome == delivery.Outcome(delivered=0, failed=1)
    error = await stores.pg.fetchval("SELECT last_error FROM notifications")
    assert error.startswith("not delivered")


async def test_a_claim_holds_off_other_deliverers_until_it_runs_out(
    stores: Stores, receiver: Receiver, courier: WebhookCourier
) -> None:
    await point_webhook(stores, receiver.url)
    await write_blacklisted(stores)
    # A deliverer claims it and dies before posting.
    assert len(await stores.pg.fetch(q("claim_notifications"), 10, 30.0)) == 1

    assert await delivery.deliver_due(stores.pg, courier, FAST) == delivery.Outcome(0, 0)
    await stores.pg.execute("UPDATE notifications SET next_attempt_at = now()")  # claim over
    assert await delivery.deliver_due(stores.pg, courier, FAST) == delivery.Outcome(1, 0)
    assert receiver.received and (await outbox(stores))[0][2:] == ("delivered", 2)


def test_backoff_doubles_and_is_bounded() -> None:
    policy = delivery.Policy(max_attempts=8, retry_seconds=5.0, claim_seconds=20.0)
    assert [policy.backoff(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert policy.backoff(40) == 3600.0


async def write_blacklisted(stores: Stores) -> None:
    now = dt.datetime.now(dt.UTC)
    async with stores.ledger.transaction() as conn:
        await notifications.blacklisted(
            conn, HOSPITAL, "alice", until=now + dt.timedelta(days=1), since=now, source="manual"
        )


async def test_writing_one_event_twice_keeps_the_first(stores: Stores) -> None:
    await point_webhook(stores, "http://127.0.0.1:9/hooks")
    await write_blacklisted(stores)
    dedupe_id = await stores.pg.fetchval("SELECT dedupe_id FROM notifications")
    async with stores.ledger.transaction() as conn:
        await conn.execute(
            "INSERT INTO notifications (hospital_id, dedupe_id, kind, payload)"
            " VALUES ($1, $2, 'blacklisted', '{}') ON CONFLICT DO NOTHING",
            HOSPITAL,
            dedupe_id,
        )
    assert len(await outbox(stores)) == 1


async def test_a_refund_notifies_once(service: BookingService, stores: Stores) -> None:
    await point_webhook(stores, "http://127.0.0.1:9/hooks")
    (sid,) = await create(service, schedule_in(capacity=2, fee_cents=100))
    booking = (await service.book("alice", sid)).booking
    for _ in range(2):
        async with stores.ledger.transaction() as conn:
            await notifications.refunded(conn, booking, amount_cents=100, refund_ref="r-1")
    payload = await stores.pg.fetchval("SELECT payload FROM notifications WHERE kind = 'refunded'")
    assert orjson.loads(payload)["amount_cents"] == 100
    assert [row[0] for row in await outbox(stores)] == [f"refunded/{booking.id}"]


async def test_reminders_once_per_booking_within_the_horizon(
    service: BookingService, stores: Stores
) -> None:
    await point_webhook(stores, "http://127.0.0.1:9/hooks")
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    soon, later = await create(
        service,
        schedule_in(visit_date=tomorrow, capacity=2),
        schedule_in(doctor_id="d2", department_id="d2", capacity=2),  # a week ahead
    )
    booking = (await service.book("alice", soon)).booking
    await service.book("alice", later)

    assert await reminders.write_due(stores.pg, hours=48) == 1
    assert await reminders.write_due(stores.pg, hours=48) == 0
    assert (f"reminder/{booking.id}", "reminder", "pending", 0) in await outbox(stores)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/New_York", "Europe/London"])
async def test_the_ledger_starts_sessions_when_localtime_does(stores: Stores, zone: str) -> None:
    # Around a daylight-saving change and an ordinary day.
    for day in (dt.date(2026, 3, 8), dt.date(2026, 3, 29), dt.date(2026, 7, 1)):
        for period in Period:
            in_sql = await stores.pg.fetchval(
                "SELECT visit_starts_at($1, $2, $3)", day, period.value, zone
            )
            assert in_sql == visit_starts_at(day, period, ZoneInfo(zone))
