"""The Redis gates keep every promise when a step's outcome is uncertain: a ledger write whose
reply was lost, a take script whose reply was lost, a process that died between the ledger
cancel and the Redis release, and admin changes racing a slot's load or failing to reach
Redis after their commit. Redis always ends up agreeing with the ledger."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from bench.chaos_proxy import ChaosProxy
from bench.embedded import ServiceUrls
from core.booking import BookingService
from core.domain import Booking, BookingRequest, Code, Rules, Schedule, ScheduleIn
from core.errors import ServiceUnavailable, SlotrushError
from core.keys import slot_tag
from core.redis_scripts import LOAD, ScriptCall
from core.settings import Settings
from core.stores import Stores
from strategies.redis_gate.gate import RedisGate
from strategies.redis_gate.lease import Lease
from strategies.redis_lua import RedisLua
from tests.conftest import StrategyFactory, open_test_stores
from tests.polling import eventually
from tests.scenarios import HOSPITAL, VISIT_DATE, schedule_in
from tests.test_redis_recovery import forget_redis_state

TOMORROW = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


@pytest.fixture
async def redis_proxy(service_urls: ServiceUrls) -> AsyncIterator[ChaosProxy]:
    """A proxy in front of the test's Redis, to lose its replies or cut it off."""
    host, _, port = service_urls.redis_url.removeprefix("redis://").partition("/")[0].partition(":")
    async with ChaosProxy(host, int(port), drop_rate=0.0) as proxy:
        yield proxy


@pytest.fixture
async def proxied_stores(
    settings: Settings, redis_proxy: ChaosProxy, test_database_url: str
) -> AsyncIterator[Stores]:
    url = f"redis://127.0.0.1:{redis_proxy.port}/0"
    async with open_test_stores(settings, url, test_database_url) as opened:
        yield opened


async def started(cls: type[RedisGate], stores: Stores) -> RedisGate:
    gate = cls(stores)
    await gate.start()
    return gate


@pytest.fixture
async def proxied_gate(
    gate_class: type[RedisGate], proxied_stores: Stores
) -> AsyncIterator[RedisGate]:
    gate = await started(gate_class, proxied_stores)
    yield gate
    await gate.close()


@pytest.fixture
async def proxied_lua_gate(proxied_stores: Stores) -> AsyncIterator[RedisGate]:
    """redis-lua, the gate that keeps the rules and the blacklist in Redis."""
    gate = await started(RedisLua, proxied_stores)
    yield gate
    await gate.close()


@pytest.fixture
async def lua_gate(make_strategy: StrategyFactory) -> RedisGate:
    """redis-lua, the gate that keeps the rules and the blacklist in Redis."""
    gate = await make_strategy(RedisLua)
    assert isinstance(gate, RedisGate)
    return gate


async def create(service: BookingService, *items: ScheduleIn) -> list[Schedule]:
    return [view.schedule for view in await service.create_schedules(items)]


async def three_schedules(service: BookingService) -> list[Schedule]:
    """Two schedules of one department and one of another, three numbers each."""
    return await create(
        service,
        schedule_in(capacity=3),
        schedule_in(doctor_id="doc2", capacity=3),
        schedule_in(department_id="d2", doctor_id="doc3", capacity=3),
    )


def attempt(schedule: Schedule, patient_id: str) -> BookingRequest:
    return BookingRequest(schedule, patient_id, str(uuid.uuid4()))


async def free_in_redis(gate: RedisGate, schedule: Schedule) -> int:
    key = gate.slot_keys(slot_tag(schedule.hospital_id, schedule.visit_date)).free(schedule.id)
    return int(await gate.stores.redis.bitcount(key))


async def free_in_ledger(stores: Stores, schedule: Schedule) -> int:
    return await stores.ledger.remaining(schedule)


async def counters_off(gate: RedisGate, stores: Stores) -> dict[str, tuple[Any, Any]]:
    """The patient counters where Redis and the ledger's active bookings disagree:
    field -> (Redis, ledger). Counts must be equal; a schedule field must be present alike."""
    if not gate.rules_in_redis:
        return {}
    slot = gate.slot_keys(slot_tag(HOSPITAL, VISIT_DATE))
    raw = await stores.redis.hgetall(slot.counters)
    in_redis = {k.decode(): v.decode() for k, v in raw.items()}
    rows = await stores.pg.fetch(
        "SELECT patient_id, schedule_id, department_id FROM bookings"
        " WHERE hospital_id = $1 AND visit_date = $2 AND status = 'booked'",
        HOSPITAL,
        VISIT_DATE,
    )
    counts: Counter[str] = Counter()
    held: set[str] = set()
    for r in rows:
        counts[f"{r['patient_id']}:day"] += 1
        counts[f"{r['patient_id']}:d:{r['department_id']}"] += 1
        held.add(f"{r['patient_id']}:s:{r['schedule_id']}")
    off: dict[str, tuple[Any, Any]] = {}
    for field in {*in_redis, *counts, *held}:
        if ":s:" in field:
            if (field in in_redis) != (field in held):
                off[field] = (in_redis.get(field), field in held)
        elif int(in_redis.get(field, 0)) != counts[field]:
            off[field] = (in_redis.get(field), counts[field])
    return off


# --- hole 1: an uncertain ledger write ------------------------------------------------------


async def test_a_commit_whose_reply_was_lost_keeps_its_booking_and_its_counters(
    gate: RedisGate, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = BookingService(gate, stores.ledger)
    first, same_department, other_department = await three_schedules(service)
    await service.book("warm-up", first.id)  # loads the slot
    write = gate._write

    async def commits_then_loses_the_reply(lease: Lease) -> Any:
        await write(lease)
        raise ConnectionResetError("the reply to the commit was lost")

    monkeypatch.setattr(gate, "_write", commits_then_loses_the_reply)
    try:
        uncertain: Booking | Code = (await service.book("alice", first.id, "k1")).booking
    except (ServiceUnavailable, SlotrushError) as exc:
        uncertain = getattr(exc, "code", Code.BUSY)
    monkeypatch.setattr(gate, "_write", write)

    held = await stores.ledger.patient_bookings("alice", before=None, limit=100)
    assert [b.schedule_id for b in held] == [first.id], "the commit landed"
    assert uncertain == held[0], "the outcome was resolved from the ledger, not guessed"
    # Redis still counts the booking: the department is full for alice, her day is not.
    with pytest.raises(SlotrushError) as refused:
        await service.book("alice", same_department.id)
    assert refused.value.code is Code.DEPARTMENT_LIMIT
    assert isinstance((await service.book("alice", other_department.id)).booking, Booking)
    assert (await stores.ledger.audit()).limit_violations == 0
    assert await free_in_redis(gate, first) == await free_in_ledger(stores, first)
    assert await counters_off(gate, stores) == {}
    # A retry with the key gets the first answer.
    assert (await service.book("alice", first.id, "k1")).booking == held[0]


async def test_a_write_landing_after_its_lease_ran_out_is_not_given_back(
    gate: RedisGate, stores: Stores
) -> None:
    service = BookingService(gate, stores.ledger)
    (schedule,) = await create(service, schedule_in(capacity=1))
    slow = await gate.take(attempt(schedule, "slow"))
    assert isinstance(slow, Lease)
    # A lock on the number holds the write in PostgreSQL after it started, until the lease
    # has run out and the reconcilers have looked at it.
    async with stores.pg.acquire() as blocker, blocker.transaction():
        await blocker.execute(
            "SELECT 1 FROM schedule_numbers WHERE schedule_id = $1 FOR UPDATE", schedule.id
        )
        writing = asyncio.create_task(gate._write(slow))
        await asyncio.sleep(gate.settings.lease_seconds + 2.0)
        assert not writing.done()
    written = await writing

    assert isinstance(written, Booking), "the write landed"
    await asyncio.sleep(5 * gate.settings.reconcile_interval)
    assert await free_in_redis(gate, schedule) == await free_in_ledger(stores, schedule) == 0
    assert await counters_off(gate, stores) == {}


async def test_a_booking_written_while_redis_reloaded_is_counted_after_the_reload(
    gate: RedisGate, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = BookingService(gate, stores.ledger)
    first, same_department, elsewhere = await three_schedules(service)
    write = gate._write
    writing, may_write = asyncio.Event(), asyncio.Event()

    async def held_back(lease: Lease) -> Any:
        writing.set()
        await may_write.wait()
        return await write(lease)

    monkeypatch.setattr(gate, "_write", held_back)
    alice = asyncio.create_task(service.book("alice", first.id))
    await writing.wait()
    monkeypatch.setattr(gate, "_write", write)
    # Redis loses its state, and reloads it from a ledger without alice's row.
    await forget_redis_state(stores)
    await service.book("bob", elsewhere.id)
    may_write.set()
    assert isinstance((await alice).booking, Booking)
    await gate.flush()

    with pytest.raises(SlotrushError) as refused:
        await service.book("alice", same_department.id)
    assert refused.value.code is Code.DEPARTMENT_LIMIT
    assert await free_in_redis(gate, first) == await free_in_ledger(stores, first)
    assert await counters_off(gate, stores) == {}


# --- hole 2: a keyed retry after a lost take reply ------------------------------------------


async def test_a_keyed_retry_after_a_lost_take_reply_books_the_number_taken(
    proxied_gate: RedisGate, proxied_stores: Stores, redis_proxy: ChaosProxy
) -> None:
    service = BookingService(proxied_gate, proxied_stores.ledger)
    (schedule,) = await create(service, schedule_in(capacity=3))
    await service.book("warm-up", schedule.id)  # loads the slot and the scripts

    redis_proxy.drop_rate = 1.0  # the take runs in Redis, its reply is lost
    with pytest.raises(ServiceUnavailable):
        await service.book("alice", schedule.id, "k1")
    redis_proxy.drop_rate = 0.0

    started_at = time.monotonic()
    retried = await service.book("alice", schedule.id, "k1")
    assert isinstance(retried.booking, Booking)
    assert time.monotonic() - started_at < 1.0, "the retry resolved its own lease at once"
    # The number the lost take held is the booking's: none is out on a lease any more.
    assert await free_in_redis(proxied_gate, schedule) == 1
    assert await free_in_ledger(proxied_stores, schedule) == 1


# --- hole 3: a crash between the ledger cancel and the Redis release ------------------------


async def test_a_cancel_whose_release_died_with_its_process_is_released_by_another(
    gate_class: type[RedisGate],
    proxied_stores: Stores,
    redis_proxy: ChaosProxy,
    stores: Stores,
) -> None:
    dying = await started(gate_class, proxied_stores)
    service = BookingService(dying, proxied_stores.ledger)
    (schedule,) = await create(service, schedule_in(capacity=1))
    held = (await service.book("alice", schedule.id)).booking

    redis_proxy.cut = True  # the release never reaches Redis ...
    cancelled = await service.cancel("alice", held.id)
    assert cancelled.status.value == "cancelled"
    await dying.reconciler.close()  # ... and the process dies before it could resend it
    redis_proxy.cut = False

    survivor = await started(gate_class, stores)
    try:
        again = BookingService(survivor, stores.ledger)

        async def bookable() -> bool:
            return await free_in_redis(survivor, schedule) == 1

        await eventually(bookable, 5.0, "the cancelled number back in Redis")
        assert isinstance((await again.book("alice", schedule.id)).booking, Booking)
        assert await counters_off(survivor, stores) == {}
    finally:
        await survivor.close()


# --- hole 4: admin changes racing a load, or failing to reach Redis --------------------------


async def test_a_blacklisting_committed_while_the_slot_loads_reaches_redis(
    lua_gate: RedisGate, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = BookingService(lua_gate, stores.ledger)
    submit = lua_gate.submit
    raced = False

    def blacklist_before_the_load(call: ScriptCall) -> Awaitable[Any]:
        nonlocal raced
        # The load from a ledger snapshot, not the one adding new schedules to a loaded slot.
        from_snapshot = call.script is LOAD and call.args[call.args[0] + 1] == "0"
        if from_snapshot and not raced:
            raced = True
            return _then(service.put_blacklist(HOSPITAL, "mallory", TOMORROW), submit(call))
        return submit(call)

    monkeypatch.setattr(lua_gate, "submit", blacklist_before_the_load)
    (schedule,) = await create(service, schedule_in(capacity=5))  # loads the slot
    assert raced
    await service.book("alice", schedule.id)

    slot = lua_gate.slot_keys(slot_tag(HOSPITAL, VISIT_DATE))
    assert await stores.redis.hexists(slot.blacklist, "mallory")
    with pytest.raises(SlotrushError) as refused:
        await service.book("mallory", schedule.id)
    assert refused.value.code is Code.BLACKLISTED


async def _then(first: Awaitable[Any], second: Awaitable[Any]) -> Any:
    await first
    return await second


async def test_admin_changes_whose_redis_update_failed_still_reach_redis(
    proxied_lua_gate: RedisGate, proxied_stores: Stores, redis_proxy: ChaosProxy
) -> None:
    service = BookingService(proxied_lua_gate, proxied_stores.ledger)
    first, second = await create(
        service, schedule_in(capacity=5), schedule_in(department_id="d2", doctor_id="doc2")
    )
    await service.book("alice", first.id)  # loads the slot

    redis_proxy.cut = True
    # The ledger has both changes: they are answered as done.
    await service.put_blacklist(HOSPITAL, "mallory", TOMORROW)
    await service.put_rules(HOSPITAL, Rules(max_per_day=1))
    redis_proxy.cut = False

    slot = proxied_lua_gate.slot_keys(slot_tag(HOSPITAL, VISIT_DATE))

    async def applied() -> bool:
        redis = proxied_stores.redis
        rules = await redis.hget(slot.slot, "max_per_day")
        return bool(await redis.hexists(slot.blacklist, "mallory")) and rules == b"1"

    await eventually(applied, 5.0, "the blacklist and rules in Redis")
    with pytest.raises(SlotrushError) as refused:
        await service.book("alice", second.id)
    assert refused.value.code is Code.DAILY_LIMIT


async def test_the_ledger_refuses_a_blacklisted_patient_redis_let_through(
    lua_gate: RedisGate, stores: Stores
) -> None:
    service = BookingService(lua_gate, stores.ledger)
    (schedule,) = await create(service, schedule_in(capacity=2))
    await service.book("alice", schedule.id)  # loads the slot
    await service.put_blacklist(HOSPITAL, "mallory", TOMORROW)
    slot = lua_gate.slot_keys(slot_tag(HOSPITAL, VISIT_DATE))
    await stores.redis.hdel(slot.blacklist, "mallory")  # Redis lost the entry somehow

    with pytest.raises(SlotrushError) as refused:
        await service.book("mallory", schedule.id)
    assert refused.value.code is Code.BLACKLISTED
    assert await free_in_redis(lua_gate, schedule) == 1
    assert await counters_off(lua_gate, stores) == {}
