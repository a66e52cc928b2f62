"""Payments (API.md 1.1) against the real sandbox provider over HTTP and a real ledger: paying
a hold books it under every strategy; declines, duplicate, late and out-of-order notices;
a payment racing the expiry of its hold; refunds while the provider is down, and after a
process is killed between the provider's refund and the ledger's record of it."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from bench.embedded import ServiceUrls
from bench.sandbox import SandboxProcess
from core.booking import BookingService
from core.domain import Booking, BookingStatus, Code, PaymentStatus
from core.errors import SlotrushError
from core.failpoints import REFUND_AFTER_PROVIDER
from core.lifecycle import expiry, settlement
from core.payments import refunds, signing
from core.payments.ledger import Applied
from core.payments.providers import Providers
from core.payments.sandbox import SandboxProvider
from core.payments.service import Payments
from core.stores import Stores
from strategies.base import InventoryStrategy
from strategies.pg_pessimistic import PgPessimistic
from tests.conftest import StrategyFactory
from tests.invariants import money_violations
from tests.sandbox import REPO, SECRET, Sandbox, complete, running_sandbox, signed
from tests.scenarios import create, schedule_in

FEE = 2500
# Generous: the machine is shared and loaded; a passing test returns as soon as it can.
WAIT_SECONDS = 30.0
PROVIDER_TIMEOUT = 1.0


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox() as running:
        yield running


@pytest.fixture
async def payments(stores: Stores, sandbox: Sandbox) -> AsyncIterator[Payments]:
    providers = Providers({"sandbox": SandboxProvider(sandbox.url, SECRET, PROVIDER_TIMEOUT)})
    service = Payments(stores.pg, providers)
    # The webhook endpoint's work, in this process: the sandbox notifies it over HTTP.
    receiver = web.Application()

    async def webhook(request: web.Request) -> web.Response:
        signature = request.headers.get(signing.HEADER)
        try:
            applied = await service.receive("sandbox", signature, await request.read())
        except SlotrushError as exc:
            return web.json_response({"code": exc.code}, status=exc.status)
        return web.json_response({"applied": applied})

    receiver.router.add_post("/webhook", webhook)
    runner = web.AppRunner(receiver)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sandbox.faults.webhook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhook"
    try:
        yield service
    finally:
        await runner.cleanup()
        await providers.close()


@pytest.fixture
async def plain(make_strategy: StrategyFactory, stores: Stores) -> BookingService:
    """For what frees no numbers, or frees them the same way in every strategy."""
    return BookingService(await make_strategy(PgPessimistic), stores.ledger)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def hold(service: BookingService, patient: str, schedule_id: int) -> Booking:
    booking = (await service.book(patient, schedule_id)).booking
    assert booking.status is BookingStatus.PENDING_PAYMENT
    return booking


async def current(stores: Stores, booking: Booking) -> Booking:
    found = await stores.ledger.get_booking(booking.id)
    assert found is not None
    return found


async def until(
    stores: Stores,
    booking: Booking,
    done: Callable[[Booking], bool],
    seconds: float = WAIT_SECONDS,
) -> Booking:
    deadline = time.monotonic() + seconds
    while True:
        now = await current(stores, booking)
        if done(now) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.05)


def paid(b: Booking) -> bool:
    return b.payment_status is PaymentStatus.PAID


async def refund_now(stores: Stores, providers: Providers) -> int:
    """Run the refund sweep once, with every refund owed due now (no backoff to wait)."""
    await stores.pg.execute("UPDATE refunds SET next_attempt_at = now()")
    return await refunds.refund_due(stores.pg, providers, claim_seconds=PROVIDER_TIMEOUT + 2)


async def movements(stores: Stores, booking: Booking) -> list[tuple[str, int]]:
    rows = await stores.pg.fetch(
        "SELECT kind, amount_cents FROM money_movements WHERE booking_id = $1 ORDER BY kind",
        booking.id,
    )
    return [(r["kind"], r["amount_cents"]) for r in rows]


# --- paying --------------------------------------------------------------------------------


async def test_paying_a_hold_books_it(
    service: BookingService,
    stores: Stores,
    payments: Payments,
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
) -> None:
    (sid,) = await create(service, schedule_in(capacity=2, fee_cents=FEE))
    booking = await hold(service, "alice", sid)

    started = await payments.checkout(booking)
    again = await payments.checkout(booking)

    assert again.payment == started.payment
    assert started.booking.payment.status is PaymentStatus.PENDING
    assert started.booking.payment.provider_ref == started.payment.checkout_ref
    assert started.payment.checkout_url is not None
    assert started.payment.checkout_ref is not None
    await complete(session, sandbox.url, started.payment.checkout_ref, "succeeded")
    done = await until(stores, booking, paid)
    assert (done.status, done.payment.status, done.payment.amount_cents) == (
        BookingStatus.BOOKED,
        PaymentStatus.PAID,
        FEE,
    )
    assert done.number == booking.number
    assert await movements(stores, booking) == [("charge", FEE)]
    assert await money_violations(stores.pg) == []


async def test_a_free_or_paid_booking_has_nothing_to_pay(
    plain: BookingService, payments: Payments
) -> None:
    (free,) = await create(plain, schedule_in(capacity=2))
    booking = (await plain.book("alice", free)).booking

    with pytest.raises(SlotrushError) as refused:
        await payments.checkout(booking)
    assert refused.value.code is Code.INVALID_STATE


async def test_a_declined_checkout_leaves_the_hold_to_pay_again(
    plain: BookingService,
    stores: Stores,
    payments: Payments,
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
) -> None:
    (sid,) = await create(plain, schedule_in(capacity=2, fee_cents=FEE))
    booking = await hold(plain, "alice", sid)
    first = await payments.checkout(booking)
    assert first.payment.checkout_ref is not None
    await complete(session, sandbox.url, first.payment.checkout_ref, "declined")
    failed = await until(stores, booking, lambda b: b.payment_status is PaymentStatus.FAILED)
    assert failed.status is BookingStatus.PENDING_PAYMENT

    second = await payments.checkout(failed)
    assert second.payment.id != first.payment.id and second.payment.checkout_ref is not None
    await complete(session, sandbox.url, second.payment.checkout_ref, "succeeded")

    assert (await until(stores, booking, paid)).status is BookingStatus.BOOKED
    assert await movements(stores, booking) == [("charge", FEE)]


async def test_the_provider_down_answers_payment_provider_unavailable_until_it_is_up(
    plain: BookingService, payments: Payments, sandbox: Sandbox
) -> None:
    (sid,) = await create(plain, schedule_in(capacity=2, fee_cents=FEE))
    booking = await hold(plain, "alice", sid)
    sandbox.faults.timeout = PROVIDER_TIMEOUT * 2

    with pytest.raises(SlotrushError) as refused:
        await payments.checkout(booking)
    assert refused.value.code is Code.PAYMENT_PROVIDER_UNAVAILABLE
    sandbox.faults.timeout = 0

    started = await payments.checkout(booking)
    assert started.payment.checkout_url is not None
    # One checkout at the provider, whichever call opened it: the reference is the payment's.
    (opened,) = sandbox.ledger.checkouts.values()
    assert (opened.ref, opened.reference) == (
        started.payment.checkout_ref,
        started.payment.reference,
    )


# --- notices -------------------------------------------------------------------------------


async def test_duplicate_and_reordered_notices_charge_each_payment_once(
    plain: BookingService,
    stores: Stores,
    payments: Payments,
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
) -> None:
    (sid,) = await create(plain, schedule_in(capacity=2, fee_cents=FEE))
    first, second = [await hold(plain, p, sid) for p in ("alice", "bob")]
    sandbox.faults.duplicate = True
    sandbox.faults.reorder = True
    refs = []
    for booking in (first, second):
        ref = (await payments.checkout(booking)).payment.checkout_ref
        assert ref is not None
        refs.append(ref)

    for ref in refs:
        await complete(session, sandbox.url, ref, "succeeded")

    for booking in (first, second):
        assert (await until(stores, booking, paid)).status is BookingStatus.BOOKED
        assert await movements(stores, booking) == [("charge", FEE)]
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if len(sandbox.deliveries()) >= 4:
                break
            await asyncio.sleep(0.05)
    delivered = [d.reference for d in sandbox.deliveries()]
    # The second overtook the first, and each came twice.
    assert delivered[0] == delivered[1] != delivered[2] == delivered[3]
    assert await money_violations(stores.pg) == []


async def test_a_stale_notice_after_a_newer_one_changes_nothing(
    plain: BookingService,
    stores: Stores,
    payments: Payments,
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
) -> None:
    (sid,) = await create(plain, schedule_in(capacity=2, fee_cents=FEE))
    booking = await hold(plain, "alice", sid)
    declined = await payments.checkout(booking)
    assert declined.payment.checkout_ref is not None
    await complete(session, sandbox.url, declined.payment.checkout_ref, "declined")
    await until(stores, booking, lambda b: b.payment_status is PaymentStatus.FAILED)
    succeeded = await payments.checkout(await current(stores, booking))
    assert succeeded.payment.checkout_ref is not None
    await complete(session, sandbox.url, succeeded.payment.checkout_ref, "succeeded")
    await until(stores, booking, paid)

    # The decline of the first checkout, delivered again after the second was paid.
    late = {
        "id": "evt_late",
        "type": "checkout.declined",
        "created": int(time.time()),
        "data": {
            "checkout_ref": declined.payment.checkout_ref,
            "reference": declined.payment.reference,
            "amount_cents": FEE,
            "charge_ref": None,
        },
    }
    body, signature = signed(late)

    assert await payments.receive("sandbox", signature, body) is Applied.NOTHING
    after = await current(stores, booking)
    assert (after.status, after.payment_status) == (BookingStatus.BOOKED, PaymentStatus.PAID)


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "t=1,v1=00",
        "v1=abc",
        "garbage",
    ],
)
async def test_a_notice_not_signed_by_the_provider_is_refused(
    payments: Payments, signature: str | None
) -> None:
    with pytest.raises(SlotrushError) as refused:
        await payments.receive("sandbox", signature, b"{}")
    assert refused.value.code is Code.BAD_SIGNATURE


async def test_a_notice_signed_too_long_ago_or_with_another_secret_is_refused(
    payments: Payments,
) -> None:
    body = b'{"id": "evt"}'
    old = signing.sign(SECRET, body, int(time.time()) - signing.TOLERANCE_SECONDS - 5)
    forged = signing.sign("not-the-secret", body, int(time.time()))
    for signature in (old, forged):
        with pytest.raises(SlotrushError) as refused:
            await payments.receive("sandbox", signature, body)
        assert refused.value.code is Code.BAD_SIGNATURE
    fresh = signing.sign(SECRET, body, int(time.time()))
    with pytest.raises(SlotrushError) as refused:
        await payments.receive("sandbox", fresh, body)
    assert refused.value.code is Code.INVALID_REQUEST


# --- money going back ------------------------------------------------------------------------


async def test_a_payment_racing_the_expiry_of_its_hold_books_or_refunds_never_both(
    service: BookingService,
    strategy: InventoryStrategy,
    stores: Stores,
    payments: Payments,
    sandbox: Sandbox,
) -> None:
    sandbox.faults.webhook_url = None
    (sid,) = await create(service, schedule_in(capacity=20, fee_cents=FEE))
    holds = [await hold(service, f"p{i}", sid) for i in range(20)]
    notices = []
    for booking in holds:
        payment = (await payments.checkout(booking)).payment
        assert payment.checkout_ref is not None
        notices.append(
            {
                "id": f"evt_{booking.id}",
                "type": "checkout.succeeded",
                "created": int(time.time()),
                "data": {
                    "checkout_ref": payment.checkout_ref,
                    "reference": payment.reference,
                    "amount_cents": FEE,
                    "charge_ref": f"ch_{booking.id}",
                },
            }
        )
        sandbox.ledger.checkouts[payment.checkout_ref].status = "succeeded"
        sandbox.ledger.checkouts[payment.checkout_ref].charge_ref = f"ch_{booking.id}"
    await stores.pg.execute(
        "UPDATE bookings SET hold_expires_at = now() - interval '1 second'"
        " WHERE status = 'pending_payment'"
    )

    async def pay(event: dict[str, object]) -> Applied:
        return await payments.receive("sandbox", *reversed(signed(event)))  # type: ignore[arg-type]

    await asyncio.gather(
        expiry.expire_holds(stores.pg, strategy, batch=3), *(pay(n) for n in notices)
    )
    await expiry.expire_holds(stores.pg, strategy)
    providers = Providers({"sandbox": SandboxProvider(sandbox.url, SECRET, PROVIDER_TIMEOUT)})
    try:
        await refund_now(stores, providers)
    finally:
        await providers.close()

    ended = [await current(stores, b) for b in holds]
    outcomes = {(b.status, b.payment_status) for b in ended}
    assert outcomes <= {
        (BookingStatus.BOOKED, PaymentStatus.PAID),
        (BookingStatus.EXPIRED, PaymentStatus.REFUNDED),
    }, outcomes
    for b in ended:
        kept = FEE if b.status is BookingStatus.BOOKED else 0
        moved = await movements(stores, b)
        assert sum(a if k == "charge" else -a for k, a in moved) == kept
    assert await money_violations(stores.pg) == []


async def test_refunds_resume_once_the_provider_is_back_and_finish_once(
    plain: BookingService,
    stores: Stores,
    payments: Payments,
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
) -> None:
    (sid,) = await create(plain, schedule_in(capacity=2, fee_cents=FEE))
    booking = await hold(plain, "alice", sid)
    ref = (await payments.checkout(booking)).payment.checkout_ref
    assert ref is not None
    await complete(session, sandbox.url, ref, "succeeded")
    await until(stores, booking, paid)
    providers = Providers({"sandbox": SandboxProvider(sandbox.url, SECRET, PROVIDER_TIMEOUT)})
    try:
        cancelled = await plain.cancel("alice", booking.id)
        assert cancelled.payment_status is PaymentStatus.REFUNDING
        sandbox.faults.fail = True
        assert await refund_now(stores, providers) == 0
        sandbox.faults.fail = False
        sandbox.faults.timeout = PROVIDER_TIMEOUT * 2
        assert await refund_now(stores, providers) == 0
        owed = await stores.pg.fetchrow("SELECT attempts, last_error FROM refunds")
        assert owed is not None and owed["attempts"] == 2 and owed["last_error"]
        # The provider refunded while its answer timed out; asked again, it answers that one.
        await asyncio.sleep(PROVIDER_TIMEOUT * 2)
        sandbox.faults.timeout = 0

        assert await refund_now(stores, providers) == 1
        assert await refund_now(stores, providers) == 0
    finally:
        await providers.close()
    refunded = await current(stores, booking)
    assert refunded.payment_status is PaymentStatus.REFUNDED
    assert sandbox.refunds_of(ref) == 1
    assert await movements(stores, booking) == [("charge", FEE), ("refund", FEE)]
    assert await money_violations(stores.pg) == []


async def test_a_paid_no_show_is_refunded_at_day_end(
    plain: BookingService,
    stores: Stores,
    payments: Payments,
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    (sid,) = await create(plain, schedule_in(capacity=2, fee_cents=FEE, visit_date=today))
    booking = await hold(plain, "alice", sid)
    ref = (await payments.checkout(booking)).payment.checkout_ref
    assert ref is not None
    await complete(session, sandbox.url, ref, "succeeded")
    await until(stores, booking, paid)

    await settlement.settle_day(stores.pg, plain.strategy, booking.hospital_id, today)
    providers = Providers({"sandbox": SandboxProvider(sandbox.url, SECRET, PROVIDER_TIMEOUT)})
    try:
        assert (await current(stores, booking)).payment_status is PaymentStatus.REFUNDING
        assert await refund_now(stores, providers) == 1
    finally:
        await providers.close()

    settled = await current(stores, booking)
    assert (settled.status, settled.payment_status) == (
        BookingStatus.NO_SHOW,
        PaymentStatus.REFUNDED,
    )
    assert sandbox.refunds_of(ref) == 1
    assert await money_violations(stores.pg) == []


async def test_a_worker_killed_mid_refund_refunds_exactly_once_after_restart(
    plain: BookingService,
    stores: Stores,
    payments: Payments,
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    service_urls: ServiceUrls,
    test_database_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    (sid,) = await create(plain, schedule_in(capacity=2, fee_cents=FEE))
    booking = await hold(plain, "alice", sid)
    ref = (await payments.checkout(booking)).payment.checkout_ref
    assert ref is not None
    await complete(session, sandbox.url, ref, "succeeded")
    await until(stores, booking, paid)
    await plain.cancel("alice", booking.id)
    env = {
        **os.environ,
        "REDIS_URL": service_urls.redis_url,
        "DATABASE_URL": test_database_url,
        "SLOTRUSH_REDIS_PREFIX": redis_prefix,
        "SLOTRUSH_PAY_SANDBOX_URL": sandbox.url,
        "SLOTRUSH_PAY_TIMEOUT": str(PROVIDER_TIMEOUT),
    }

    doomed = await worker({**env, "SLOTRUSH_FAILPOINTS": REFUND_AFTER_PROVIDER}, tmp_path)
    async with asyncio.timeout(WAIT_SECONDS):
        assert await doomed.wait() != 0
    # Refunded at the provider, not in the ledger: the kill fell between the two.
    assert sandbox.refunds_of(ref) == 1
    assert (await current(stores, booking)).payment_status is PaymentStatus.REFUNDING

    restarted = await worker(env, tmp_path)
    try:
        # The dead worker's periodic tick is another's once its heartbeat is 30 s old.
        done = await until(
            stores, booking, lambda b: b.payment_status is PaymentStatus.REFUNDED, 90.0
        )
    finally:
        restarted.terminate()
        await restarted.wait()
    assert done.payment_status is PaymentStatus.REFUNDED
    assert sandbox.refunds_of(ref) == 1
    assert await movements(stores, booking) == [("charge", FEE), ("refund", FEE)]
    assert await money_violations(stores.pg) == []


async def worker(env: dict[str, str], tmp_path: Path) -> asyncio.subprocess.Process:
    with (tmp_path / "worker.log").open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            "worker",
            "--strategy",
            "pg-pessimistic",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd=REPO,
        )


async def test_a_sandbox_killed_and_started_again_remembers_and_notifies(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The fault suite's pay-provider-kill relies on it: a provider forgets nothing it
    answered, and delivers a notice it never got answered after a restart."""
    answered: list[str] = []
    notified = asyncio.Event()
    receiver = web.Application()

    async def webhook(request: web.Request) -> web.Response:
        event_id = orjson.loads(await request.read())["id"]
        if not receiver_up:
            return web.json_response({}, status=503)
        answered.append(event_id)
        notified.set()
        return web.json_response({})

    receiver_up = False
    receiver.router.add_post("/webhook", webhook)
    runner = web.AppRunner(receiver)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    provider = SandboxProcess(tmp_path)
    provider.webhook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhook"
    try:
        await asyncio.to_thread(provider.start)
        async with session.post(
            f"{provider.url}/checkouts", json={"reference": "r1", "amount_cents": FEE}
        ) as opened:
            ref = (await opened.json())["ref"]
        await complete(session, provider.url, ref, "succeeded")
        refund_path = f"{provider.url}/checkouts/{ref}/refunds"
        async with session.post(
            refund_path, json={"amount_cents": FEE}, headers={"Idempotency-Key": "k1"}
        ) as refunded:
            first_refund = (await refunded.json())["refund_ref"]
        port = provider.port

        await asyncio.to_thread(provider.kill, signal.SIGKILL)
        receiver_up = True
        await asyncio.to_thread(provider.start)

        assert provider.port == port
        async with session.get(f"{provider.url}/checkouts/{ref}") as read:
            checkout = await read.json()
        assert (checkout["status"], [r["refund_ref"] for r in checkout["refunds"]]) == (
            "succeeded",
            [first_refund],
        )
        async with session.post(
            refund_path, json={"amount_cents": FEE}, headers={"Idempotency-Key": "k2"}
        ) as again:
            assert (again.status, (await again.json())["refund_ref"]) == (200, first_refund)
        await asyncio.wait_for(notified.wait(), WAIT_SECONDS)
    finally:
        await asyncio.to_thread(provider.kill)
        await runner.cleanup()
    assert len(answered) == 1
