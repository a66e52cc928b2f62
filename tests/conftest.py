"""Fixtures shared by every test: real Redis and PostgreSQL, a clean ledger per test.

The stores themselves (servers, a database and a Redis key prefix per test) come from
bench.fixtures, which the micro-benchmarks share; here they are opened for the tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bench.embedded import ServiceUrls
from core.booking import BookingService
from core.settings import Settings
from core.stores import Stores, open_stores
from strategies import STRATEGIES
from strategies.base import InventoryStrategy
from strategies.redis_gate.gate import RedisGate
from strategies.redis_lua import RedisLua
from strategies.redis_queue import RedisQueue

# Servers, a database and a Redis key prefix per test (service_urls, template_database,
# test_database_url, redis_prefix): fixtures the micro-benchmarks share.
pytest_plugins = ("bench.fixtures",)


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
def redis_url(request: pytest.FixtureRequest, service_urls: ServiceUrls) -> str:
    """The cluster for a strategy case that asks for it, else the single Redis."""
    if "strategy_case" in request.fixturenames and request.getfixturevalue("strategy_case").cluster:
        return str(request.getfixturevalue("redis_cluster_url"))
    return service_urls.redis_url


@pytest.fixture
async def stores(
    settings: Settings, redis_url: str, test_database_url: str
) -> AsyncIterator[Stores]:
    async with open_test_stores(settings, redis_url, test_database_url) as opened:
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


@dataclass(frozen=True)
class StrategyCase:
    """A strategy, and whether its Redis is the 3-primary cluster (redis_cluster_url)."""

    name: str
    cluster: bool = False

    def __str__(self) -> str:
        return f"{self.name}@cluster" if self.cluster else self.name


# The strategies that gate the ledger with Redis, for the tests of what they share.
GATES = [RedisLua, RedisQueue]
SINGLE_NODE = [StrategyCase(name) for name in sorted(STRATEGIES)]
# Every strategy, and the Redis gates again on a Redis Cluster.
WITH_CLUSTER = [*SINGLE_NODE, *(StrategyCase(cls.name, cluster=True) for cls in GATES)]


def strategy_cases(cases: Sequence[StrategyCase]) -> Any:
    """A `strategy_case` fixture over these cases, for a test module to run them all."""

    @pytest.fixture(params=cases, ids=str)
    def strategy_case(request: pytest.FixtureRequest) -> StrategyCase:
        case: StrategyCase = request.param
        return case

    return strategy_case


strategy_case = strategy_cases(SINGLE_NODE)


@pytest.fixture
def strategy_name(strategy_case: StrategyCase) -> str:
    return strategy_case.name


@pytest.fixture
async def strategy(strategy_name: str, make_strategy: StrategyFactory) -> InventoryStrategy:
    return await make_strategy(STRATEGIES[strategy_name])


class Clock:
    """The booking service's clock, which a test can move: the real time plus an offset, so
    time still passes."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def move_to(self, instant: dt.datetime) -> None:
        self.offset = instant - dt.datetime.now(dt.UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(strategy: InventoryStrategy, stores: Stores, clock: Clock) -> BookingService:
    return BookingService(strategy, stores.ledger, clock=clock)


@pytest.fixture(params=GATES, ids=[cls.name for cls in GATES])
def gate_class(request: pytest.FixtureRequest) -> type[RedisGate]:
    cls: type[RedisGate] = request.param
    return cls


@pytest.fixture
async def gate(gate_class: type[RedisGate], make_strategy: StrategyFactory) -> RedisGate:
    strategy = await make_strategy(gate_class)
    assert isinstance(strategy, RedisGate)
    return strategy
