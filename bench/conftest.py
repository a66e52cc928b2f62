"""Fixtures of the micro-benchmarks: the real servers, databases and prefixes the test suite
uses too (bench.fixtures), with the stores opened on an event loop of the benchmark's own.

pytest-benchmark times plain calls, so each benchmark drives its coroutine to completion on
that loop; it cannot share pytest-asyncio's loop, which is running while a test runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest

from bench.embedded import ServiceUrls
from core.settings import Settings
from core.stores import Stores, open_stores

# Servers, a database and a Redis key prefix per benchmark (service_urls, template_database,
# test_database_url, redis_prefix): fixtures the test suite shares.
pytest_plugins = ("bench.fixtures",)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    with asyncio.Runner() as runner:
        yield runner.get_loop()


@pytest.fixture
def bench_stores(
    loop: asyncio.AbstractEventLoop,
    service_urls: ServiceUrls,
    test_database_url: str,
    redis_prefix: str,
) -> Iterator[Stores]:
    settings = replace(Settings(), redis_prefix=redis_prefix)
    opened = open_stores(
        settings,
        redis_url=service_urls.redis_url,
        database_url=test_database_url,
        migrate_schema=False,
    )
    stores = loop.run_until_complete(opened.__aenter__())
    try:
        yield stores
    finally:
        loop.run_until_complete(opened.__aexit__(None, None, None))
