"""The Lua scripts of core/lua, and sending many script calls in one round trip.

Scripts are read once with importlib.resources and called by EVALSHA. redis-py's Script
objects would check SCRIPT EXISTS before every pipeline; here a batch is sent as is and only
the calls answered NOSCRIPT (a restarted or flushed Redis) are resent after SCRIPT LOAD.
Resending is safe: a NOSCRIPT call did not run at all.

A batch goes out on one pooled connection without redis-py's pipeline object, whose packing
and per-command bookkeeping cost about a fifth of a booking's CPU time in this process.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError


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
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def load(self, scripts: Sequence[LuaScript] = ALL) -> None:
        pipe = self._client.pipeline(transaction=False)
        for script in scripts:
            pipe.script_load(script.source)
        await pipe.execute()

    async def run(
        self, calls: Sequence[ScriptCall], prelude: Sequence[tuple[Any, ...]] = ()
    ) -> list[Any]:
        """Answer every call, in order, in one round trip (two after a SCRIPT FLUSH).

        `prelude` commands go first in the same round trip; their answers are dropped. A call
        that failed in Redis answers its exception; a lost connection raises.
        """
        results = await self._send(calls, prelude)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            await self.load(list({calls[i].script.sha: calls[i].script for i in missing}.values()))
            resent = await self._send([calls[i] for i in missing], ())
            for i, result in zip(missing, resent, strict=True):
                results[i] = result
        return results

    async def _send(
        self, calls: Sequence[ScriptCall], prelude: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        packed = [_pack(command) for command in prelude]
        packed += [_pack(("EVALSHA", call.script.sha, *call.args)) for call in calls]
        pool = self._client.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(packed, check_health=False)
            # One deadline for the whole batch instead of one per reply.
            async with asyncio.timeout(conn.socket_timeout):
                results = [await _reply(conn) for _ in packed]
        except BaseException:
            # Replies may be left unread: the connection cannot be reused.
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        return results[len(prelude) :]


async def _reply(conn: AbstractConnection) -> Any:
    """The next reply; an error reply (already read in full) is answered as its exception."""
    try:
        return await conn.read_response(timeout=math.inf)
    except ResponseError as exc:
        return exc


def _pack(command: Iterable[Any]) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b""]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    parts[0] = b"*%d\r\n" % (len(parts) - 1)
    return b"".join(parts)
