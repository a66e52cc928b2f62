"""Pytest fixtures of real stores, shared by the test suite and the micro-benchmarks.

Servers come from REDIS_URL / DATABASE_URL when set, else embedded throwaway ones. A test
gets its own database (cloned from a migrated template) and its own Redis key prefix, and
both are removed afterwards: a shared server is left as it was found. A conftest registers
them by importing them.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.database_supply import DatabaseSupply
from bench.embedded import EmbeddedRedisCluster, ServiceUrls, running_services
from bench.stack import database_at
from core.db import create_pool, migrate
from core.stores import open_redis


@pytest.fixture(scope="session")
def service_urls() -> Iterator[ServiceUrls]:
    with running_services(os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")) as urls:
        yield urls


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A Redis Cluster of 3 primaries and 3 replicas: REDIS_CLUSTER_URL (one of its nodes),
    else an embedded one, started at its first use."""
    given = os.environ.get("REDIS_CLUSTER_URL")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="slotrush-cluster-") as workdir:
        cluster = EmbeddedRedisCluster(Path(workdir), masters=3)
        cluster.start()
        try:
            yield cluster.url
        finally:
            cluster.stop()


@pytest.fixture
def redis_url(service_urls: ServiceUrls) -> str:
    """The Redis a test uses; test suites may point some tests at the cluster."""
    return service_urls.redis_url


@pytest.fixture(scope="session")
async def template_database(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """A migrated database that every test's database is cloned from."""
    name = f"slotrush_tmpl_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(service_urls.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        pool = await create_pool(database_at(service_urls.database_url, name), min_size=1)
        try:
            await migrate(pool)
        finally:
            await pool.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def database_supply(service_urls: ServiceUrls, template_database: str) -> Iterator[DatabaseSupply]:
    with DatabaseSupply(service_urls.database_url, template_database) as supply:
        yield supply


@pytest.fixture
def test_database_url(service_urls: ServiceUrls, database_supply: DatabaseSupply) -> Iterator[str]:
    """A database of this test's own, cloned from the template, dropped afterwards."""
    name = database_supply.take()
    yield database_at(service_urls.database_url, name)
    database_supply.give_back(name)


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (never FLUSHDB)."""
    prefix = f"slotrush-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = await open_redis(redis_url)
    try:
        # One by one: on a cluster, one DEL cannot name keys of several slots.
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()
