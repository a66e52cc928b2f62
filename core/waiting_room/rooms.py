"""Waiting rooms in Redis: join, stand, be admitted at the room's rate, expire if gone.

A room belongs to one schedule's opening (`opens_at`). Every state change is one Lua script
on the room's own Redis Cluster slot (core/lua/room_*.lua), on the Redis clock: the order of
the queue, the admission rate and the expiry of abandoned places are decided there, once,
however many server processes and instances serve the room.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import redis.asyncio as aioredis

from core.domain import Code
from core.errors import ServiceUnavailable, SlotrushError
from core.keyed import LruCache
from core.keys import RoomKeys, room_keys
from core.redis_scripts import ROOM_ADVANCE, ROOM_JOIN, ScriptCall, ScriptRunner
from core.waiting_room.tickets import ADMISSION, POSITION, RoomTickets, Ticket

# The most abandoned places dropped, and patients admitted, by one script call: a script
# holds Redis for its whole run, so a room of 100,000 catches up over several calls.
STEP: Final = 1_000
# Room calls in flight at once per process: a crowd joining must leave the shared Redis
# connection pool (64) to the bookings, and wait for a connection rather than fail.
_CONNECTIONS: Final = 24
# How long room keys outlive the room's closing: admission tokens issued near the end stay
# checkable, then Redis forgets the room by itself.
_KEPT_AFTER_CLOSING: Final = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """How a room admits. `opens_at` is the schedule's opening; before it arrivals are
    shuffled, after it they queue in order; the room is active until `closes_at`."""

    schedule_id: int
    opens_at: dt.datetime
    closes_at: dt.datetime
    admit_per_second: float
    admission_seconds: int
    abandon_seconds: int


@dataclass(frozen=True, slots=True)
class RoomCounts:
    waiting: int
    arrivals: int
    admitted: int
    abandoned: int


class Standing(StrEnum):
    WAITING = "waiting"
    ADMITTED = "admitted"
    # Never joined, or the place expired (the patient stopped asking): join again.
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Place:
    """Where a patient stands in a room, and the tokens that go with it."""

    config: RoomConfig
    standing: Standing
    # 1 = next to be admitted; None unless waiting.
    position: int | None
    arrival: int
    waiting: int
    estimated_wait_seconds: float
    position_token: str | None
    admission_token: str | None
    admission_expires_at: dt.datetime | None


class WaitingRooms:
    def __init__(self, client: aioredis.Redis, prefix: str, tickets: RoomTickets | None) -> None:
        self._client = client
        self._scripts = ScriptRunner(client)
        self._prefix = prefix
        self._tickets = tickets
        self._connections = asyncio.Semaphore(_CONNECTIONS)
        self._configs: LruCache[int, tuple[float, RoomConfig | None]] = LruCache(10_000)

    def keys(self, schedule_id: int) -> RoomKeys:
        return room_keys(self._prefix, schedule_id)

    async def configure(self, config: RoomConfig, *, seed: str | None = None) -> None:
        """Open (or change) a room; its queue, its shuffle's seed and what it admitted stay.
        `seed` fixes the shuffle (tests); by default a new room draws a secret one."""
        self._signing()
        keys = self.keys(config.schedule_id)
        expire_at = _ms(config.closes_at + _KEPT_AFTER_CLOSING)
        fields: dict[Any, Any] = {
            "opens_at": _ms(config.opens_at),
            "closes_at": _ms(config.closes_at),
            "expire_at": expire_at,
            "rate": repr(config.admit_per_second),
            "admission_ms": config.admission_seconds * 1000,
            "abandon_ms": config.abandon_seconds * 1000,
        }
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.config, mapping=fields)
            pipe.hsetnx(keys.config, "seed", seed or secrets.token_hex(16))
            for key in keys.all:
                pipe.pexpireat(key, expire_at)
            await pipe.execute()

    async def config(self, schedule_id: int) -> RoomConfig | None:
        """The room's configuration while it is open, else None."""
        async with self._connections:
            fields = await self._client.hgetall(self.keys(schedule_id).config)
        if not fields:
            return None
        config = _config_of(schedule_id, fields)
        return config if config.closes_at > dt.datetime.now(dt.UTC) else None

    async def counts(self, schedule_id: int) -> RoomCounts:
        keys = self.keys(schedule_id)
        async with self._connections, self._client.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.queue)
            pipe.hmget(keys.stats, "arrivals", "admitted", "abandoned")
            waiting, (arrivals, admitted, abandoned) = await pipe.execute()
        return RoomCounts(waiting, int(arrivals or 0), int(admitted or 0), int(abandoned or 0))

    async def close(self, schedule_id: int) -> None:
        await self._client.delete(*self.keys(schedule_id).all)

    async def join(self, schedule_id: int, patient_id: str) -> Place:
        """Join the room (idempotent: a patient in it keeps their place) and stand."""
        keys = self.keys(schedule_id)
        joined, standing = await self._run(
            ScriptCall(ROOM_JOIN, (6, *keys.all[:6], patient_id)),
            self._advance(keys, patient_id),
        )
        if not joined:
            raise SlotrushError(Code.WAITING_ROOM_NOT_FOUND)
        return await self._place(schedule_id, patient_id, standing)

    async def stand(self, schedule_id: int, patient_id: str, position_token: str) -> Place:
        """Where the patient of `position_token` stands now (asking keeps the place)."""
        self._signing().check(position_token, POSITION, schedule_id, patient_id)
        (standing,) = await self._run(self._advance(self.keys(schedule_id), patient_id))
        return await self._place(schedule_id, patient_id, standing)

    async def advance(self, schedule_id: int) -> None:
        """Admit whoever is due and drop abandoned places, for no one patient."""
        await self._run(self._advance(self.keys(schedule_id), ""))

    async def admission_log(self, schedule_id: int) -> list[str]:
        """Every patient admitted, in admission order (the fairness record)."""
        log = await self._client.lrange(self.keys(schedule_id).log, 0, -1)
        return [patient.decode() if isinstance(patient, bytes) else patient for patient in log]

    def check_admission(self, token: str, schedule_id: int, patient_id: str) -> Ticket:
        return self._signing().check(token, ADMISSION, schedule_id, patient_id)

    # --- internals ------------------------------------------------------------------------

    def _advance(self, keys: RoomKeys, patient_id: str) -> ScriptCall:
        return ScriptCall(ROOM_ADVANCE, (7, *keys.all, patient_id, STEP))

    async def _run(self, *calls: ScriptCall) -> list[Any]:
        async with self._connections:
            results = await self._scripts.run(calls)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    async def _place(self, schedule_id: int, patient_id: str, standing: list[Any]) -> Place:
        if standing[0] == b"none":
            raise SlotrushError(Code.WAITING_ROOM_NOT_FOUND)
        config = await self._recent_config(schedule_id)
        if config is None:
            raise SlotrushError(Code.WAITING_ROOM_NOT_FOUND)
        state, now_ms, first, arrival, waiting = standing
        tickets = self._signing()
        closes = config.closes_at.timestamp()
        position_token = tickets.sign(Ticket(POSITION, schedule_id, patient_id, closes, arrival))
        if state == b"admitted":
            expires = first / 1000
            admission = tickets.sign(Ticket(ADMISSION, schedule_id, patient_id, expires))
            return Place(
                config,
                Standing.ADMITTED,
                position=None,
                arrival=arrival,
                waiting=waiting,
                estimated_wait_seconds=0.0,
                position_token=position_token,
                admission_token=admission,
                admission_expires_at=dt.datetime.fromtimestamp(expires, dt.UTC),
            )
        if state == b"absent":
            return Place(config, Standing.ABSENT, None, 0, waiting, 0.0, None, None, None)
        until_opening = max(0.0, config.opens_at.timestamp() - now_ms / 1000)
        wait = until_opening + first / config.admit_per_second
        return Place(
            config,
            Standing.WAITING,
            position=first,
            arrival=arrival,
            waiting=waiting,
            estimated_wait_seconds=round(wait, 1),
            position_token=position_token,
            admission_token=None,
            admission_expires_at=None,
        )

    async def _recent_config(self, schedule_id: int) -> RoomConfig | None:
        """The room's configuration as read within the last second: every answer of a
        crowd's joins and questions needs it, and its settings change rarely."""
        now = time.monotonic()
        known = self._configs.get(schedule_id)
        if known is None or known[0] <= now:
            known = (now + 1.0, await self.config(schedule_id))
            self._configs.put(schedule_id, known)
        return known[1]

    def _signing(self) -> RoomTickets:
        if self._tickets is None:
            raise ServiceUnavailable(
                "waiting rooms sign their tokens with SLOTRUSH_SECRET or "
                "SLOTRUSH_WAITING_ROOM_SECRET, and this server has neither"
            )
        return self._tickets


def _ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


def _instant(ms: bytes | str) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC)


def _config_of(schedule_id: int, fields: dict[Any, Any]) -> RoomConfig:
    return RoomConfig(
        schedule_id=schedule_id,
        opens_at=_instant(fields[b"opens_at"]),
        closes_at=_instant(fields[b"closes_at"]),
        admit_per_second=float(fields[b"rate"]),
        admission_seconds=int(fields[b"admission_ms"]) // 1000,
        abandon_seconds=int(fields[b"abandon_ms"]) // 1000,
    )
