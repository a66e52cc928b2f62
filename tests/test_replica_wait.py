"""SLOTRUSH_REDIS_REPLICA_WAIT_MS on a Redis Cluster: every node's batch of script calls ends
with WAIT, its answers line up with the calls as without it, and a batch a replica
acknowledged is not counted as unreplicated. (What a failover does without it is the fault
suite's: tests/test_faults.py, redis-primary-kill.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from redis.asyncio.cluster import RedisCluster

from core.redis_scripts import RELEASE, ScriptCall, ScriptRunner
from core.stores import redis_client


@pytest.fixture
async def cluster(redis_cluster_url: str) -> AsyncIterator[RedisCluster]:
    client = redis_client(redis_cluster_url, cluster=True)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    yield client
    await client.aclose()


def _calls(tags: list[str]) -> list[ScriptCall]:
    """A release per tag on a loaded-looking slot: each answers 1 (number 7 now free)."""
    calls = []
    for tag in tags:
        keys = [f"t:{{{tag}}}:{name}" for name in ("slot", "schedules", "free", "released")]
        calls.append(ScriptCall(RELEASE, (4, *keys, "s1", 7, "p1", "d1", f"release-{tag}")))
    return calls


def _unreplicated() -> float:
    return REGISTRY.get_sample_value("slotrush_redis_unreplicated_batches_total") or 0.0


async def _waits_on_nodes(client: RedisCluster) -> int:
    stats = await client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
    return sum(
        int(node_stats.get("cmdstat_wait", {}).get("calls", 0))
        for node_stats in stats.values()
        if isinstance(node_stats, dict)
    )


async def _load_slots(client: RedisCluster, tags: list[str]) -> None:
    for tag in tags:
        await client.hset(f"t:{{{tag}}}:slot", "loaded", 1)
        await client.sadd(f"t:{{{tag}}}:schedules", "s1")


@pytest.mark.parametrize("wait_ms", [0, 2000])
async def test_each_nodes_batch_waits_for_a_replica_when_told(
    cluster: RedisCluster, wait_ms: int
) -> None:
    # Tags spread over the slots, so the batch reaches every primary.
    tags = [uuid.uuid4().hex for _ in range(12)]
    await _load_slots(cluster, tags)
    runner = ScriptRunner(cluster, replica_wait_ms=wait_ms)
    await runner.load([RELEASE])
    nodes = {cluster.get_node_from_key(f"t:{{{tag}}}:slot").name for tag in tags}
    waits_before = await _waits_on_nodes(cluster)
    unreplicated_before = _unreplicated()

    answers = await runner.run(_calls(tags))

    assert answers == [1] * len(tags)
    waits = await _waits_on_nodes(cluster) - waits_before
    assert waits == (len(nodes) if wait_ms else 0)
    # The fixture's replicas are in sync: every batch was acknowledged in time.
    assert _unreplicated() == unreplicated_before
    for tag in tags:
        replica = cluster.get_node_from_key(f"t:{{{tag}}}:free", replica=True)
        if wait_ms and replica is not None:
            # Acknowledged by the replica before the answer came: there already.
            async with aioredis.Redis(host=replica.host, port=replica.port) as direct:
                await direct.execute_command("READONLY")
                assert await direct.getbit(f"t:{{{tag}}}:free", 7) == 1
        await cluster.delete(*(f"t:{{{tag}}}:{n}" for n in ("slot", "schedules", "free")))
        await cluster.delete(f"t:{{{tag}}}:released")
