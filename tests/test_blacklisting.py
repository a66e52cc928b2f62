"""Automatic blacklisting by a hospital's rules (API.md 1.1) under every strategy: crossing a
rule by cancels (a late one counting double) or no-shows blacklists the patient in the
transaction of the transition, the next booking is refused `blacklisted` at once (redis-lua
included), the window, expiry by itself, the whitelist, the events listed, and exactly once
whatever repeats (invariant 10)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from core import blacklisting
from core.blacklisting import BlacklistRules
from core.booking import BookingService
from core.domain import Booking, Code, Period
from core.errors import SlotrushError
from core.keys import slot_tag
from core.lifecycle import settlement
from core.stores import Stores
from strategies.redis_gate.gate import RedisGate
from tests.polling import eventually
from tests.scenarios import HOSPITAL, VISIT_DATE, create, schedule_in, utc_today

# Cancels of a visit a week ahead are never late with this.
NEVER_LATE = 0


async def rules(stores: Stores, **overrides: int) -> None:
    await stores.pg.execute(
        "INSERT INTO hospitals (id) VALUES ($1) ON CONFLICT DO NOTHING", HOSPITAL
    )
    base = {"max_cancellations": 2, "max_no_shows": 2, "late_cancel_minutes": NEVER_LATE}
    await blacklisting.put_rules(stores.pg, HOSPITAL, BlacklistRules(**{**base, **overrides}))


async def booked_and_cancelled(
    service: BookingService, patient: str, *doctors: str
) -> list[Booking]:
    """The patient books a session of each doctor and cancels it."""
    sids = await create(
        service, *(schedule_in(doctor_id=d, department_id=d, capacity=5) for d in doctors)
    )
    cancelled = []
    for sid in sids:
        booking = (await service.book(patient, sid)).booking
        cancelled.append(await service.cancel(patient, booking.id))
    return cancelled


async def refusal(service: BookingService, patient: str, schedule_id: int) -> Code | None:
    try:
        await service.book(patient, schedule_id)
    except SlotrushError as exc:
        return exc.code
    return None


async def entries(stores: Stores) -> dict[str, blacklisting.BlacklistEntry]:
    page = await blacklisting.blacklist_page(stores.pg, HOSPITAL, after=None, limit=100)
    return {entry.patient_id: entry for entry in page.items}


async def test_cancels_reaching_the_rule_blacklist_at_once_under_every_strategy(
    service: BookingService, stores: Stores
) -> None:
    await rules(stores, max_cancellations=2, ban_days=30)
    (spare,) = await create(service, schedule_in(doctor_id="spare", capacity=5))
    await service.book("alice", spare)  # loads the Redis slot before the ban, for the gates

    (first,) = await booked_and_cancelled(service, "alice", "a1")
    assert await entries(stores) == {}
    (second,) = await booked_and_cancelled(service, "alice", "a2")

    entry = (await entries(stores))["alice"]
    assert entry.source == "automatic"
    assert [(e.booking_id, e.kind, e.weight) for e in entry.events] == [
        (first.id, "cancellation", 1),
        (second.id, "cancellation", 1),
    ]
    assert dt.timedelta(days=29) < entry.until - entry.since <= dt.timedelta(days=30)
    # The next attempt, whatever the strategy keeps of the blacklist, is refused.
    (other,) = await create(
        service, schedule_in(doctor_id="other", department_id="other", capacity=5)
    )
    assert await refusal(service, "alice", other) is Code.BLACKLISTED
    assert await refusal(service, "bob", other) is None


async def test_a_late_cancel_counts_double(service: BookingService, stores: Stores) -> None:
    # A visit a week ahead is "late" for a rule of two weeks.
    await rules(stores, max_cancellations=2, late_cancel_minutes=14 * 24 * 60)
    (cancelled,) = await booked_and_cancelled(service, "alice", "a1")
    entry = (await entries(stores))["alice"]
    assert [(e.booking_id, e.kind, e.weight) for e in entry.events] == [
        (cancelled.id, "late_cancellation", 2)
    ]


async def test_no_shows_reaching_the_rule_blacklist_at_settlement(
    service: BookingService, stores: Stores
) -> None:
    await rules(stores, max_no_shows=1)
    (sid,) = await create(
        service, schedule_in(visit_date=utc_today(), period=Period.NIGHT, capacity=5)
    )
    booking = (await service.book("alice", sid)).booking

    await settlement.settle_day(stores.pg, service.strategy, HOSPITAL, utc_today())

    entry = (await entries(stores))["alice"]
    assert [(e.booking_id, e.kind) for e in entry.events] == [(booking.id, "no_show")]
    (later,) = await create(service, schedule_in(doctor_id="later", capacity=5))
    assert await refusal(service, "alice", later) is Code.BLACKLISTED


async def test_settlement_twice_and_at_once_blacklists_once(
    service: BookingService, stores: Stores
) -> None:
    await rules(stores, max_no_shows=1)
    await stores.pg.execute(
        "UPDATE hospitals SET webhook_url = 'http://127.0.0.1:9/' WHERE id = $1", HOSPITAL
    )
    (sid,) = await create(
        service, schedule_in(visit_date=utc_today(), period=Period.NIGHT, capacity=30)
    )
    for i in range(30):
        await service.book(f"p{i}", sid)

    strategy = service.strategy
    await asyncio.gather(
        *(
            settlement.settle_day(stores.pg, strategy, HOSPITAL, utc_today(), batch=7)
            for _ in range(2)
        )
    )
    await settlement.settle_day(stores.pg, strategy, HOSPITAL, utc_today())

    listed = await entries(stores)
    assert sorted(listed) == sorted(f"p{i}" for i in range(30))
    assert all(len(entry.events) == 1 for entry in listed.values())
    counts = await stores.pg.fetchrow(
        "SELECT (SELECT count(*) FROM breaches) AS breaches,"
        " (SELECT count(*) FROM notifications WHERE kind = 'blacklisted') AS notices"
    )
    assert tuple(counts) == (30, 30)


async def test_breaches_outside_the_window_do_not_count(
    service: BookingService, stores: Stores
) -> None:
    await rules(stores, max_cancellations=2, window_days=30)
    await booked_and_cancelled(service, "alice", "a1")
    await stores.pg.execute("UPDATE breaches SET occurred_at = now() - interval '31 days'")
    await booked_and_cancelled(service, "alice", "a2")
    assert await entries(stores) == {}
    await booked_and_cancelled(service, "alice", "a3")
    assert [e.kind for e in (await entries(stores))["alice"].events] == ["cancellation"] * 2


async def test_breaches_count_toward_one_ban_only(service: BookingService, stores: Stores) -> None:
    await rules(stores, max_cancellations=2)
    await booked_and_cancelled(service, "alice", "a1", "a2")
    await service.delete_blacklist(HOSPITAL, "alice")
    await booked_and_cancelled(service, "alice", "a3")
    assert await entries(stores) == {}


async def test_a_whitelisted_patient_is_never_blacklisted_automatically(
    service: BookingService, stores: Stores
) -> None:
    await rules(stores, max_cancellations=1)
    await blacklisting.whitelist(stores.pg, HOSPITAL, "alice")
    await booked_and_cancelled(service, "alice", "a1", "a2")
    await booked_and_cancelled(service, "bob", "b1")
    assert sorted(await entries(stores)) == ["bob"]

    await blacklisting.unwhitelist(stores.pg, HOSPITAL, "alice")
    await booked_and_cancelled(service, "alice", "a3")
    assert sorted(await entries(stores)) == ["alice", "bob"]


async def test_without_rules_no_one_is_blacklisted(service: BookingService, stores: Stores) -> None:
    await booked_and_cancelled(service, "alice", "a1", "a2", "a3")
    assert await entries(stores) == {}
    with pytest.raises(SlotrushError) as missing:
        await blacklisting.rules(stores.pg, HOSPITAL)
    assert missing.value.code is Code.BLACKLIST_RULES_NOT_FOUND


async def test_an_automatic_ban_ends_by_itself_under_every_strategy(
    service: BookingService, stores: Stores
) -> None:
    await rules(stores, max_cancellations=1)
    (sid,) = await create(service, schedule_in(doctor_id="later", capacity=5))
    await service.book("bob", sid)  # loads the Redis slot for the gates
    await booked_and_cancelled(service, "alice", "a1")
    assert await refusal(service, "alice", sid) is Code.BLACKLISTED

    # As if the ban had been set two seconds from its end (what a Redis copy compares too).
    async with stores.ledger.transaction() as conn:
        await conn.execute("UPDATE blacklist SET until = now() + interval '2 seconds'")
        await conn.execute("UPDATE hospitals SET config_version = config_version + 1")
        await service.strategy.config_changing(conn, HOSPITAL)
    await service.strategy.config_changed(HOSPITAL)
    await asyncio.sleep(2.5)

    assert await refusal(service, "alice", sid) is None


async def test_the_redis_copy_of_the_blacklist_learns_an_automatic_entry(
    gate: RedisGate, stores: Stores
) -> None:
    service = BookingService(gate, stores.ledger)
    await rules(stores, max_cancellations=1)
    (sid,) = await create(service, schedule_in(doctor_id="later", capacity=5))
    await service.book("bob", sid)
    await booked_and_cancelled(service, "alice", "a1")

    assert await refusal(service, "alice", sid) is Code.BLACKLISTED
    if not gate.rules_in_redis:
        return
    # Recorded in the transaction of the ban and copied by the reconcilers.
    blacklist = gate.slot_keys(slot_tag(HOSPITAL, VISIT_DATE)).blacklist
    await eventually(
        lambda: stores.redis.hexists(blacklist, "alice"), 10, "alice in the Redis blacklist"
    )


async def test_an_ended_transition_rolled_back_leaves_no_breach(
    service: BookingService, stores: Stores
) -> None:
    await rules(stores, max_cancellations=1)
    (sid,) = await create(service, schedule_in(capacity=5))
    booking = (await service.book("alice", sid)).booking

    class Crash(Exception):
        pass

    from core.lifecycle.cancellation import cancel_by_patient

    with pytest.raises(Crash):
        async with stores.ledger.transaction() as conn:
            await cancel_by_patient(conn, service.strategy, booking)
            assert await conn.fetchval("SELECT count(*) FROM blacklist") == 1
            raise Crash
    assert await stores.pg.fetchval("SELECT count(*) FROM breaches") == 0
    assert await entries(stores) == {}
