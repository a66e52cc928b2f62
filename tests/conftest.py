"""Fixtures shared by every test: real Redis and PostgreSQL, a clean ledger per test.

Servers come from REDIS_URL / DATABASE_URL when set, else embedded throwaway ones. A test
gets its own database (cloned from a migrated template) and its own Redis key prefix, and
both are removed afterwards: a shared server is left as it was found.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from core.booking import BookingService
from core.db import create_pool, migrate
from core.services import ServiceUrls, running_services
from core.settings import Settings
from core.stores import Stores, open_stores
from strategies import STRATEGIES
from strategies.base import InventoryStrategy


def database_url(server_url: str, database: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def service_urls() -> Iterator[ServiceUrls]:
    with running_services(os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")) as urls:
        yield urls


@pytest.fixture(scope="session")
async def template_database(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """A migrated database that every test's database is cloned from."""
    name = f"slotrush_tmpl_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(service_urls.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        pool = await create_pool(database_url(service_urls.database_url, name), min_size=1)
        try:
            await migrate(pool)
        finally:
            await pool.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def test_database_url(
    service_urls: ServiceUrls, template_database: str
) -> AsyncIterator[str]:
    name = f"slotrush_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(service_urls.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield database_url(service_urls.database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def redis_prefix(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (never FLUSHDB)."""
    prefix = f"slotrush-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = aioredis.Redis.from_url(service_urls.redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def settings(redis_prefix: str) -> Settings:
    # Short leases so crash-recovery tests finish quickly.
    return replace(Settings(), redis_prefix=redis_prefix, lease_seconds=2.0, reconcile_interval=0.2)


@asynccontextmanager
async def open_test_stores(
    settings: Settings, redis_url: str, database_url: str
) -> AsyncIterator[Stores]:
    """Stores over a test's own database, already migrated by its template."""
    async with open_stores(
        settings, redis_url=redis_url, database_url=database_url, migrate_schema=False
    ) as opened:
        yield opened


@pytest.fixture
async def stores(
    settings: Settings, service_urls: ServiceUrls, test_database_url: str
) -> AsyncIterator[Stores]:
    async with open_test_stores(settings, service_urls.redis_url, test_database_url) as opened:
        yield opened


StrategyFactory = Callable[[type[InventoryStrategy]], Awaitable[InventoryStrategy]]


@pytest.fixture
async def make_strategy(stores: Stores) -> AsyncIterator[StrategyFactory]:
    started: list[InventoryStrategy] = []

    async def make(cls: type[InventoryStrategy]) -> InventoryStrategy:
        strategy = cls(stores)
        await strategy.start()
        started.append(strategy)
        return strategy

    yield make
    for strategy in started:
        await strategy.close()


@pytest.fixture(params=sorted(STRATEGIES))
def strategy_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def strategy(strategy_name: str, make_strategy: StrategyFactory) -> InventoryStrategy:
    return await make_strategy(STRATEGIES[strategy_name])


@pytest.fixture
def service(strategy: InventoryStrategy, stores: Stores) -> BookingService:
    return BookingService(strategy, stores.ledger)
