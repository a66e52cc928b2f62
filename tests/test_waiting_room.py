"""Waiting rooms against a real Redis: exact places under concurrency, the fair shuffle,
first come first served after the opening, abandoned places passing their turn on, the
admission rate held by Redis across processes, and idempotent joins."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from dataclasses import replace

import pytest

from bench.embedded import ServiceUrls
from core.domain import Code
from core.errors import SlotrushError
from core.stores import Stores, redis_client
from core.waiting_room import RoomConfig, RoomTickets, Standing, WaitingRooms
from core.waiting_room.tickets import ADMISSION, Ticket

SECRET = "a-test-secret-of-at-least-thirty-two-bytes"
SCHEDULE = 4242
# A rate no test waits long enough to see admit anyone (bucket: one admission per 1,000 s).
NEVER = 0.001


def room(opens_in: float, rate: float = NEVER, abandon: int = 60) -> RoomConfig:
    now = dt.datetime.now(dt.UTC)
    return RoomConfig(
        schedule_id=SCHEDULE,
        opens_at=now + dt.timedelta(seconds=opens_in),
        closes_at=now + dt.timedelta(hours=1),
        admit_per_second=rate,
        admission_seconds=120,
        abandon_seconds=abandon,
    )


@pytest.fixture
def rooms(stores: Stores) -> WaitingRooms:
    return WaitingRooms(stores.redis, stores.settings.redis_prefix, RoomTickets(SECRET))


async def test_concurrent_joins_get_every_place_once(rooms: WaitingRooms) -> None:
    await rooms.configure(room(opens_in=-1))
    patients = [f"p{i}" for i in range(300)]
    places = await asyncio.gather(*(rooms.join(SCHEDULE, p) for p in patients))
    assert {place.standing for place in places} == {Standing.WAITING}
    # Each join's position is where it stood when it joined: the arrivals are 1..n, once each.
    assert sorted(place.arrival for place in places) == list(range(1, len(patients) + 1))
    # Now, after the opening, the queue is the arrival order, every position taken once.
    standing = await asyncio.gather(
        *(
            rooms.stand(SCHEDULE, p, place.position_token or "")
            for p, place in zip(patients, places, strict=True)
        )
    )
    by_arrival = sorted(standing, key=lambda place: place.arrival)
    assert [place.position for place in by_arrival] == list(range(1, len(patients) + 1))


async def test_a_join_is_idempotent(rooms: WaitingRooms) -> None:
    await rooms.configure(room(opens_in=-1))
    first = await rooms.join(SCHEDULE, "p1")
    await rooms.join(SCHEDULE, "p2")
    again = await asyncio.gather(*(rooms.join(SCHEDULE, "p1") for _ in range(20)))
    assert {(place.arrival, place.position) for place in again} == {(1, 1)}
    assert first.arrival == 1
    counts = await rooms.counts(SCHEDULE)
    assert (counts.arrivals, counts.waiting) == (2, 2)


async def test_early_arrivals_are_shuffled_fairly_then_later_ones_queue_in_order(
    rooms: WaitingRooms,
) -> None:
    await rooms.configure(room(opens_in=3600, rate=10_000), seed="fixed-seed")
    early = [f"early{i}" for i in range(400)]
    for patient in early:  # one by one: arrival order is list order
        await rooms.join(SCHEDULE, patient)
    # The opening comes (the same room, its opening moved to now): later arrivals queue.
    await rooms.configure(room(opens_in=0, rate=10_000))
    late = [f"late{i}" for i in range(50)]
    for patient in late:
        await rooms.join(SCHEDULE, patient)
    while (await rooms.counts(SCHEDULE)).waiting:
        await rooms.advance(SCHEDULE)
        await asyncio.sleep(0.01)
    log = await rooms.admission_log(SCHEDULE)
    assert sorted(log) == sorted(early + late)
    # Every early arrival before every later one, and the later ones first come first served.
    assert set(log[: len(early)]) == set(early)
    assert log[len(early) :] == late
    # The shuffle: where an early arrival was admitted says nothing of when it arrived.
    admitted_at = {patient: i for i, patient in enumerate(log)}
    arrival_quarter = [i * 4 // len(early) for i in range(len(early))]
    admission_quarter = [admitted_at[p] * 4 // len(early) for p in early]
    assert abs(_spearman(list(range(len(early))), [admitted_at[p] for p in early])) < 0.2
    # Chi-square of arrival quarter against admission quarter (9 degrees of freedom):
    # 40 is far out in the tail (p < 1e-5) of a uniform shuffle, and far below an unshuffled
    # queue's 1,200.
    table = Counter(zip(arrival_quarter, admission_quarter, strict=True))
    expected = len(early) / 16
    chi2 = sum((table[(a, b)] - expected) ** 2 / expected for a in range(4) for b in range(4))
    assert chi2 < 40, (chi2, table)


async def test_an_abandoned_place_passes_its_turn_on(rooms: WaitingRooms) -> None:
    await rooms.configure(room(opens_in=-1, abandon=1))
    gone = await rooms.join(SCHEDULE, "gone")
    stays = await rooms.join(SCHEDULE, "stays")
    assert (gone.position, stays.position) == (1, 2)
    # "stays" keeps asking; "gone" never asks again.
    for _ in range(40):
        await asyncio.sleep(0.1)
        place = await rooms.stand(SCHEDULE, "stays", stays.position_token or "")
        if place.position == 1:
            break
    assert place.position == 1
    assert (await rooms.counts(SCHEDULE)).abandoned == 1
    back = await rooms.stand(SCHEDULE, "gone", gone.position_token or "")
    assert back.standing is Standing.ABSENT
    # Joining again is at the back.
    rejoined = await rooms.join(SCHEDULE, "gone")
    assert (rejoined.arrival, rejoined.position) == (3, 2)


async def test_admission_holds_the_rate_across_processes(
    rooms: WaitingRooms, stores: Stores, service_urls: ServiceUrls
) -> None:
    rate = 20.0
    config = room(opens_in=0, rate=rate)
    await rooms.configure(config)
    await asyncio.gather(*(rooms.join(SCHEDULE, f"p{i}") for i in range(300)))
    # A second "process": its own Redis connections, the same room.
    other_client = redis_client(service_urls.redis_url)
    other = WaitingRooms(other_client, stores.settings.redis_prefix, RoomTickets(SECRET))
    try:
        for i in range(40):
            await (rooms if i % 2 else other).advance(SCHEDULE)
            await asyncio.sleep(0.05)
    finally:
        await other_client.aclose()
    seconds, micros = await stores.redis.time()
    elapsed = seconds + micros / 1e6 - config.opens_at.timestamp()
    admitted = (await rooms.counts(SCHEDULE)).admitted
    # Never more than the rate allows since the opening (exact: the bucket starts empty);
    # and it keeps up, give or take a slow machine's stalls.
    assert admitted <= rate * elapsed
    assert admitted >= rate * elapsed / 3 - rate


async def test_admitted_patients_get_an_admission_token_for_them_and_this_schedule(
    rooms: WaitingRooms,
) -> None:
    await rooms.configure(room(opens_in=0, rate=1000))
    place = await rooms.join(SCHEDULE, "p1")
    for _ in range(50):
        if place.standing is Standing.ADMITTED:
            break
        await asyncio.sleep(0.02)
        place = await rooms.stand(SCHEDULE, "p1", place.position_token or "")
    assert place.standing is Standing.ADMITTED and place.admission_token
    assert rooms.check_admission(place.admission_token, SCHEDULE, "p1").patient_id == "p1"
    for schedule, patient in ((SCHEDULE, "p2"), (SCHEDULE + 1, "p1")):
        with pytest.raises(SlotrushError) as refused:
            rooms.check_admission(place.admission_token, schedule, patient)
        assert refused.value.code is Code.ADMISSION_REQUIRED
    # A position token is not an admission token, nor one of another key, nor an expired one.
    tickets = RoomTickets(SECRET)
    stale = tickets.sign(Ticket(ADMISSION, SCHEDULE, "p1", expires_at=1.0))
    forged = RoomTickets(SECRET + "x").sign(Ticket(ADMISSION, SCHEDULE, "p1", 4e9))
    for token in (place.position_token or "", stale, forged):
        with pytest.raises(SlotrushError) as refused:
            rooms.check_admission(token, SCHEDULE, "p1")
        assert refused.value.code is Code.ADMISSION_REQUIRED


async def test_no_room_no_place(rooms: WaitingRooms) -> None:
    with pytest.raises(SlotrushError) as refused:
        await rooms.join(SCHEDULE, "p1")
    assert refused.value.code is Code.WAITING_ROOM_NOT_FOUND
    await rooms.configure(replace(room(opens_in=-1), closes_at=dt.datetime.now(dt.UTC)))
    assert await rooms.config(SCHEDULE) is None


def _spearman(xs: list[int], ys: list[int]) -> float:
    """Rank correlation of two rankings without ties."""
    n = len(xs)
    d2 = sum((x - y) ** 2 for x, y in zip(xs, ys, strict=True))
    return 1 - 6 * d2 / (n * (n * n - 1))
