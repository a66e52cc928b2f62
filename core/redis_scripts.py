"""The Lua scripts of core/lua, and sending many script calls in one round trip.

Scripts are read once with importlib.resources and called by EVALSHA. redis-py's Script
objects would check SCRIPT EXISTS before every pipeline; here a pipeline is sent as is and
only the calls answered NOSCRIPT (a restarted or flushed Redis) are resent after SCRIPT LOAD.
Resending is safe: a NOSCRIPT call did not run at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError


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
SET_RULES = _read("set_rules")
SET_BLACKLIST = _read("set_blacklist")
ALL = (TAKE, ADMIT, CONFIRM, GIVE_BACK, RELEASE, LOAD, SET_RULES, SET_BLACKLIST)


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
        pipe = self._client.pipeline(transaction=False)
        for command in prelude:
            pipe.execute_command(*command)
        for script, args in calls:
            pipe.execute_command("EVALSHA", script.sha, *args)
        results = await pipe.execute(raise_on_error=False)
        return results[len(prelude) :]
