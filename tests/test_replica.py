"""Browsing reads on a real streaming replica (core/replica.py): a primary of the module's
own and a hot standby made from it with pg_basebackup -R, both on loopback. Pausing the
replica's replay makes "which server answered" visible: only the primary has what was
written since."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from bench.child_server import free_port
from bench.embedded import EmbeddedPostgres, EmbeddedReplica, ServiceUrls
from core.booking import BookingService
from core.db import create_pool, migrate
from core.domain import Booking, Period, ScheduleIn, ScheduleQuery
from core.hospitals import Hospital
from core.ledger import Ledger
from core.replica import BrowsingReads
from core.settings import Settings
from core.stores import Stores, open_stores, redis_client
from strategies.pg_pessimistic import PgPessimistic

# Generous for a loaded machine: on an idle one a write is replayed within milliseconds.
REPLAY_WITHIN = 10.0


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[EmbeddedPostgres, EmbeddedReplica]]:
    # Not tmp_path: pytest makes it 0700, which the postgres user cannot cross as root.
    workdir = Path(tempfile.mkdtemp(prefix="slotrush-replica-"))
    workdir.chmod(0o755)
    primary = EmbeddedPostgres(workdir / "primary")
    replica = EmbeddedReplica(workdir / "replica", primary)
    try:
        primary.start()
        replica.start()
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def replica(servers: tuple[EmbeddedPostgres, EmbeddedReplica]) -> EmbeddedReplica:
    return servers[1]


@pytest.fixture
async def pools(
    servers: tuple[EmbeddedPostgres, EmbeddedReplica],
) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    primary, replica = servers
    primary_pool = await create_pool(primary.url, min_size=1, acquire_timeout=5.0)
    replica_pool = await create_pool(replica.url, min_size=0, acquire_timeout=5.0)
    try:
        await migrate(primary_pool)
        # The schema on the replica before a test reads there: `reads` checks the lag only
        # against its 60 s bound, which a replica still replaying the migrations meets.
        await until(await replayed_from_now(primary_pool, replica_pool))
        yield primary_pool, replica_pool
    finally:
        await replica_pool.close()
        await primary_pool.close()


@pytest.fixture
async def reads(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> BrowsingReads:
    # No watch: each test decides when the replica is checked.
    browsing = BrowsingReads(*pools, max_lag=60.0)
    await until(browsing.check)
    return browsing


@pytest.fixture
async def service(
    pools: tuple[asyncpg.Pool, asyncpg.Pool], reads: BrowsingReads, service_urls: ServiceUrls
) -> AsyncIterator[BookingService]:
    primary = pools[0]
    client = redis_client(service_urls.redis_url)
    ledger = Ledger(primary, reads)
    strategy = PgPessimistic(Stores(Settings(), primary, client, ledger))
    await strategy.start()
    try:
        yield BookingService(strategy, ledger)
    finally:
        await strategy.close()
        await client.aclose()


@pytest.fixture
async def paused(replica: EmbeddedReplica, reads: BrowsingReads) -> AsyncIterator[None]:
    """The replica receives the primary's WAL but replays none of it until the test ends
    (once `reads` found it caught up)."""
    conn = await asyncpg.connect(replica.url)
    try:
        await conn.execute("SELECT pg_wal_replay_pause()")
        yield
        await conn.execute("SELECT pg_wal_replay_resume()")
    finally:
        await conn.close()


async def until(check: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until `check` answers true."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > REPLAY_WITHIN:
            raise TimeoutError(f"not true after {REPLAY_WITHIN}s")
        await asyncio.sleep(0.005)
    return time.monotonic() - began


async def replayed_from_now(
    primary: asyncpg.Pool, replica: asyncpg.Pool
) -> Callable[[], Awaitable[bool]]:
    """A check: has the replica replayed everything the primary had written when asked?"""
    written = await primary.fetchval("SELECT pg_current_wal_lsn()")

    async def replayed() -> bool:
        return bool(await replica.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", written))

    return replayed


async def unusable(reads: BrowsingReads) -> bool:
    return not await reads.check()


async def new_hospital(service: BookingService) -> str:
    hospital_id = f"h-{uuid.uuid4().hex[:12]}"
    await service.hospitals.put_hospital(Hospital(hospital_id, "A hospital"))
    return hospital_id


async def listed(service: BookingService, hospital_id: str) -> bool:
    page = await service.hospitals.hospitals_page(after=hospital_id[:-1], limit=500)
    return hospital_id in {h.id for h in page.items}


async def test_a_write_on_the_primary_reaches_the_replica_read_path(
    service: BookingService, reads: BrowsingReads
) -> None:
    hospital_id = await new_hospital(service)

    lag = await until(lambda: listed(service, hospital_id))

    assert reads.on_replica
    assert lag < REPLAY_WITHIN


@pytest.mark.usefixtures("paused")
async def test_browsing_reads_are_answered_by_the_replica(
    service: BookingService, reads: BrowsingReads
) -> None:
    hospital_id = await new_hospital(service)

    assert not await listed(service, hospital_id)
    assert await service.hospitals.hospital(hospital_id)  # the administrator's, on the primary
    assert reads.on_replica


@pytest.mark.usefixtures("paused")
async def test_the_primary_serves_while_the_replica_lags_too_far(
    service: BookingService, reads: BrowsingReads
) -> None:
    hospital_id = await new_hospital(service)
    reads.max_lag = 0.2

    await until(lambda: unusable(reads))

    assert await listed(service, hospital_id)


async def test_the_primary_serves_everything_while_the_replica_is_down(
    service: BookingService, reads: BrowsingReads, replica: EmbeddedReplica
) -> None:
    hospital_id = await new_hospital(service)
    replica.stop()
    try:
        # A read the replica fails is answered by the primary, and the next ones go there too.
        assert await listed(service, hospital_id)
        assert not reads.on_replica
        assert not await reads.check()
        page = await service.hospitals.departments_page(hospital_id)
        assert page.items == []
    finally:
        replica.start()
    await until(reads.check)


@pytest.mark.usefixtures("paused")
async def test_booking_never_reads_the_replica(service: BookingService) -> None:
    hospital_id = await new_hospital(service)
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    (view,) = await service.create_schedules(
        [ScheduleIn(hospital_id, "d1", "doc1", tomorrow, Period.AM, capacity=1)]
    )
    schedule = view.schedule
    # As another process would: one that has not seen the schedule yet.
    elsewhere = BookingService(service.strategy, service.ledger)

    # Browsing does not see the schedule yet; booking, which reads the primary, books it.
    assert (await elsewhere.schedule_page(ScheduleQuery(hospital_id=hospital_id))).items == []
    outcome = await elsewhere.book("alice", schedule.id)
    assert isinstance(outcome.booking, Booking)
    assert await elsewhere.still_sold_out(schedule.id)
    assert (await elsewhere.booking("alice", outcome.booking.id)) == outcome.booking


async def test_stores_watch_the_replica_the_settings_name(
    servers: tuple[EmbeddedPostgres, EmbeddedReplica], service_urls: ServiceUrls
) -> None:
    primary, replica = servers
    settings = replace(Settings(), database_replica_url=replica.url)
    async with open_stores(
        settings, redis_url=service_urls.redis_url, database_url=primary.url
    ) as stores:
        await until(lambda: serving_from_replica(stores.ledger.reads))


async def test_stores_open_while_the_replica_is_down(
    servers: tuple[EmbeddedPostgres, EmbeddedReplica], service_urls: ServiceUrls
) -> None:
    primary = servers[0]
    settings = replace(
        Settings(), database_replica_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    )
    async with open_stores(
        settings, redis_url=service_urls.redis_url, database_url=primary.url
    ) as stores:
        assert not await stores.ledger.reads.check()
        assert await stores.ledger.list_schedules(ScheduleQuery(), after=None, limit=1) is not None


async def serving_from_replica(reads: BrowsingReads) -> bool:
    return reads.on_replica


def test_the_environment_names_the_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_REPLICA_URL", "postgresql://replica.example/slotrush")
    monkeypatch.setenv("SLOTRUSH_REPLICA_MAX_LAG", "0.25")

    settings = Settings.from_env()

    assert settings.database_replica_url == "postgresql://replica.example/slotrush"
    assert settings.replica_max_lag == 0.25
