"""The Lua scripts of core/lua, and sending many script calls in one round trip.

Scripts are read once with importlib.resources and called by EVALSHA. redis-py's Script
objects would check SCRIPT EXISTS before every pipeline; here a batch is sent as is and only
the calls answered NOSCRIPT (a restarted or flushed Redis, a replica just promoted) are
resent after SCRIPT LOAD. Resending is safe: a NOSCRIPT call did not run at all, and
neither did one a cluster node redirected (MOVED, ASK, TRYAGAIN, CLUSTERDOWN).

A batch goes out on one pooled connection per node without redis-py's pipeline object,
whose packing and per-command bookkeeping cost about a fifth of a booking's CPU time in
this process. On a Redis Cluster the calls are grouped by the node of their hash tag.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis import exceptions
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection

from core.failures import closed_under_it
from core.metrics import UNREPLICATED_BATCHES

# Answers of a cluster node to a call it did not run (its slot moved or is moving, or the
# cluster is failing over): safe to resend once the client knows the slots again.
_NOT_RUN_HERE = (exceptions.AskError, exceptions.TryAgainError, exceptions.ClusterDownError)
# A node that could not be reached: its slots may have a new primary.
_NODE_LOST = (exceptions.ConnectionError, exceptions.TimeoutError, OSError, TimeoutError)
_RESENDS = 5
_FIRST_RESEND_PAUSE = 0.05


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str


def _read(name: str) -> LuaScript:
    source = files("core").joinpath("lua", f"{name}.lua").read_text()
    return LuaScript(name, source, hashlib.sha1(source.encode()).hexdigest())


TAKE = _read("take")
ADMIT = _read("admit")
CONFIRM = _read("confirm")
GIVE_BACK = _read("give_back")
RELEASE = _read("release")
LOAD = _read("load")
SET_CONFIG = _read("set_config")
CLOSE = _read("close")
RESIZE = _read("resize")
ALL = (TAKE, ADMIT, CONFIRM, GIVE_BACK, RELEASE, LOAD, SET_CONFIG, CLOSE, RESIZE)
# The waiting room's (core/waiting_room), loaded on first use.
ROOM_JOIN = _read("room_join")
ROOM_ADVANCE = _read("room_advance")


class ScriptCall(NamedTuple):
    script: LuaScript
    # What EVALSHA takes after the sha: the number of keys, the keys, then the arguments.
    args: tuple[Any, ...]


class ScriptRunner:
    def __init__(self, client: aioredis.Redis | RedisCluster, *, replica_wait_ms: int = 0) -> None:
        self._client = client
        self._send = (
            _ClusterSender(client, replica_wait_ms).send
            if isinstance(client, RedisCluster)
            else _NodeSender(client).send
        )

    async def load(self, scripts: Sequence[LuaScript] = ALL) -> None:
        # On a cluster, SCRIPT LOAD goes to every primary.
        await asyncio.gather(*(self._client.script_load(script.source) for script in scripts))

    async def run(
        self, calls: Sequence[ScriptCall], prelude: Sequence[tuple[Any, ...]] = ()
    ) -> list[Any]:
        """Answer every call, in order, in one round trip per Redis node (more after a SCRIPT
        FLUSH or a cluster's slots moving).

        `prelude` commands run before the calls; their answers are dropped. A call that
        failed in Redis, or whose node could not be reached, answers its exception; a lost
        connection to a single server, or to the node of the prelude, raises.
        """
        results = await self._send(calls, prelude)
        for attempt in range(_RESENDS):
            missing = [i for i, r in enumerate(results) if isinstance(r, exceptions.NoScriptError)]
            redirected = [i for i, r in enumerate(results) if isinstance(r, _NOT_RUN_HERE)]
            if not missing and not redirected:
                break
            if missing:
                scripts = {calls[i].script.sha: calls[i].script for i in missing}
                await self.load(list(scripts.values()))
            if redirected:
                # A failover in progress answers CLUSTERDOWN until a replica takes over.
                await asyncio.sleep(_FIRST_RESEND_PAUSE * 2**attempt)
            again = sorted(missing + redirected)
            resent = await self._send([calls[i] for i in again], ())
            for i, result in zip(again, resent, strict=True):
                results[i] = result
        return results


class _NodeSender:
    """A batch to one Redis server, on one pooled connection."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._pool = client.connection_pool

    async def send(
        self, calls: Sequence[ScriptCall], prelude: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        packed = [_pack(command) for command in prelude]
        packed += [_pack(_evalsha(call)) for call in calls]
        conn = await self._pool.get_connection()
        try:
            results = await _exchange(conn, packed)
        finally:
            await self._pool.release(conn)
        return results[len(prelude) :]


class _ClusterSender:
    """A batch to a Redis Cluster: the commands of each node on one of its connections, the
    nodes at once. Every script's keys share one hash tag, so its first key names its node.

    The prelude goes first and on its own: what it announces must be in Redis before any
    call it announces runs, and calls on other nodes would not wait for it.

    With `replica_wait_ms`, each node's commands end with WAIT 1: replication is
    asynchronous, and a primary killed before its replica had a write takes it along.
    """

    def __init__(self, client: RedisCluster, replica_wait_ms: int = 0) -> None:
        self._client = client
        self._wait = ("WAIT", 1, replica_wait_ms) if replica_wait_ms > 0 else None
        # Set when a node failed or answered that a slot moved: ask the cluster for its
        # slots again before the next batch.
        self._stale = False

    async def send(
        self, calls: Sequence[ScriptCall], prelude: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        await self._client.initialize()  # only the first time
        if self._stale:
            self._stale = False
            await self._client.nodes_manager.initialize()
        for command in prelude:
            await self._prelude(command)
        results = await self._to_nodes([_evalsha(call) for call in calls])
        if any(isinstance(r, (*_NOT_RUN_HERE, *_NODE_LOST)) for r in results):
            self._stale = True
        return results

    async def _prelude(self, command: tuple[Any, ...]) -> None:
        """Run one prelude command, following its slot while a failover moves it."""
        for attempt in range(_RESENDS):
            answer = (await self._to_nodes([command]))[0]
            if not isinstance(answer, BaseException):
                return
            if not isinstance(answer, _NOT_RUN_HERE):
                raise answer
            await asyncio.sleep(_FIRST_RESEND_PAUSE * 2**attempt)
            await self._client.nodes_manager.initialize()
        # Still moving: a store failure like a lost node (busy, retry), never a 500.
        raise exceptions.ConnectionError(f"the slot of {command[1]!r} kept moving") from answer

    async def _to_nodes(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        by_node: defaultdict[str, list[int]] = defaultdict(list)
        nodes: dict[str, ClusterNode] = {}
        for i, command in enumerate(commands):
            key = _first_key(command)
            node = self._client.get_node_from_key(key)
            if node is None:
                raise exceptions.ConnectionError(f"no node serves the slot of {key!r}")
            nodes[node.name] = node
            by_node[node.name].append(i)
        answers = await asyncio.gather(
            *(
                _on_node(nodes[name], [_pack(commands[i]) for i in indexes], self._wait)
                for name, indexes in by_node.items()
            ),
            return_exceptions=True,
        )
        results: list[Any] = [None] * len(commands)
        for indexes, answer in zip(by_node.values(), answers, strict=True):
            if isinstance(answer, BaseException) and not isinstance(answer, Exception):
                raise answer
            for position, i in enumerate(indexes):
                # A node that failed fails its own calls only.
                results[i] = answer if isinstance(answer, Exception) else answer[position]
        return results


async def _on_node(
    node: ClusterNode, packed: list[bytes], wait: tuple[Any, ...] | None
) -> list[Any]:
    """The node's replies to `packed`; after `wait` (WAIT n ms) has answered, if given."""
    conn = node.acquire_connection()
    try:
        if wait is None:
            return await _exchange(conn, packed)
        *replies, replicas = await _exchange(conn, [*packed, _pack(wait)])
    except (AttributeError, RuntimeError) as exc:
        if not closed_under_it(exc):
            raise
        raise exceptions.ConnectionError(f"connection to {node.name} closed meanwhile") from exc
    finally:
        node.release(conn)
    if not isinstance(replicas, int) or replicas < wait[1]:
        UNREPLICATED_BATCHES.inc()
    return replies


async def _exchange(conn: AbstractConnection, packed: list[bytes]) -> list[Any]:
    """Send the commands, read every reply."""
    try:
        await conn.send_packed_command(packed, check_health=False)
        # One deadline for the whole batch instead of one per reply.
        async with asyncio.timeout(conn.socket_timeout):
            return [await _reply(conn) for _ in packed]
    except BaseException:
        # Replies may be left unread: the connection cannot be reused.
        await conn.disconnect()
        raise


def _evalsha(call: ScriptCall) -> tuple[Any, ...]:
    return ("EVALSHA", call.script.sha, *call.args)


def _first_key(command: tuple[Any, ...]) -> Any:
    """EVALSHA sha numkeys key ..., or a one-key command: COMMAND key ..."""
    return command[3] if command[0] == "EVALSHA" else command[1]


async def _reply(conn: AbstractConnection) -> Any:
    """The next reply; an error reply (already read in full) is answered as its exception."""
    try:
        return await conn.read_response(timeout=math.inf)
    except exceptions.ResponseError as exc:
        return exc


def _pack(command: Iterable[Any]) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b""]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    parts[0] = b"*%d\r\n" % (len(parts) - 1)
    return b"".join(parts)
