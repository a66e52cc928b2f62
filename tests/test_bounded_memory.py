"""Per-key memory stays bounded in a long-lived process: caches forget their least recently
used keys, and per-key locks and events live only while someone holds them."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from core import booking
from core.booking import BookingService
from core.errors import SlotrushError
from core.keyed import InUse, LruCache
from core.stores import Stores
from strategies.redis_gate import coalescing
from strategies.redis_gate import gate as gate_module
from strategies.redis_gate.gate import RedisGate
from strategies.redis_queue import RedisQueue
from tests.conftest import GATES, StrategyFactory
from tests.scenarios import VISIT_DATE, schedule_in

# --- the two structures ------------------------------------------------------------------


def test_lru_cache_holds_at_most_its_size_and_keeps_what_was_used_last() -> None:
    cache: LruCache[int, str] = LruCache(100)
    for key in range(10_000):
        cache.put(key, str(key))
        assert cache.get(0) == "0"  # read after every write: never the least recently used
    assert len(cache) == 100
    assert cache.get(9_999) == "9999"
    assert cache.get(9_900) is None
    assert cache.pop(0) == "0"
    assert cache.get(0) is None


def test_lru_cache_refuses_a_size_below_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LruCache(0)


async def test_in_use_shares_one_object_per_key_and_drops_it_when_idle() -> None:
    locks: InUse[int, asyncio.Lock] = InUse(asyncio.Lock)
    inside: list[int] = []

    async def hold(key: int) -> None:
        with locks.use(key) as lock:
            async with lock:
                inside.append(key)
                await asyncio.sleep(0)
                # The lock is shared: nobody else of this key is inside at the same time.
                assert inside.count(key) == 1
                inside.remove(key)

    await asyncio.gather(*(hold(key % 500) for key in range(5_000)))
    assert len(locks) == 0


def test_in_use_never_drops_an_object_while_it_is_held() -> None:
    objects: InUse[str, object] = InUse(object)
    with objects.use("k") as first:
        with objects.use("k") as second:
            assert second is first
        with objects.use("k") as third:  # the first user still holds it
            assert third is first
        assert len(objects) == 1
    assert len(objects) == 0


def test_in_use_detach_leaves_current_users_their_object_and_gives_the_next_a_new_one() -> None:
    objects: InUse[str, object] = InUse(object)
    with objects.use("k") as held:
        assert objects.detach("k") is held
        with objects.use("k") as fresh:
            assert fresh is not held
        assert len(objects) == 0  # the detached entry's user leaving removes nothing else
    assert objects.detach("k") is None


# --- the caches of a long run ------------------------------------------------------------

KEPT = 4
SLOTS = 30
CROWD = 4


@pytest.fixture(params=GATES, ids=[cls.name for cls in GATES])
async def small_gate(
    request: pytest.FixtureRequest, make_strategy: StrategyFactory, monkeypatch: pytest.MonkeyPatch
) -> RedisGate:
    """A gate, and a booking service made after it, whose caches keep KEPT keys each."""
    monkeypatch.setattr(gate_module, "_KEY_CACHE_LIMIT", KEPT)
    monkeypatch.setattr(coalescing, "_ANNOUNCED_KEPT", KEPT)
    monkeypatch.setattr(booking, "_SCHEDULES_KEPT", KEPT)
    made = await make_strategy(request.param)
    assert isinstance(made, RedisGate)
    return made


async def test_a_long_run_over_many_slots_keeps_every_per_key_map_bounded(
    small_gate: RedisGate, stores: Stores
) -> None:
    service = BookingService(small_gate, stores.ledger)
    for day in range(SLOTS):
        # One schedule per slot (a date), so every slot is loaded, announced and keyed.
        visit_date = VISIT_DATE + dt.timedelta(days=day)
        (view,) = await service.create_schedules([schedule_in(visit_date=visit_date)])
        schedule_id = view.schedule.id
        # A crowd on one number: the losers wait for the winner's lease to settle.
        answers = await asyncio.gather(
            *(service.book(f"p{day}-{i}", schedule_id) for i in range(CROWD)),
            return_exceptions=True,
        )
        won = [a.booking for a in answers if not isinstance(a, BaseException)]
        assert len(won) == 1, answers
        assert all(isinstance(a, SlotrushError) for a in answers if isinstance(a, BaseException))
        assert (await service.schedule_view(schedule_id)).remaining == 0
        await service.cancel(won[0].patient_id, won[0].id)

    assert len(service._schedules) <= KEPT
    assert len(service._remaining) <= KEPT
    assert len(small_gate._slots) <= KEPT
    assert len(small_gate._schedule_keys) <= KEPT
    assert len(small_gate._batches._announced) <= KEPT
    assert len(small_gate._settled) == 0
    assert len(small_gate.loader._loads) == 0
    if isinstance(small_gate, RedisQueue):
        assert len(small_gate._turns) == 0
