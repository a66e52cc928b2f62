"""What the stores alone can do with the same work (`slotrush bench --reference`).

- pgbench runs pg-pessimistic's booking transaction (the very named queries of core/sql) on
  one hot schedule, with as many clients as the server's pool has connections.
- redis-benchmark runs redis-lua's take script (core/lua/take.lua) with EVALSHA, a new
  patient and request id on every call.

So each strategy can be read against its store's own ceiling. Both tools are optional: when
one is missing the reference says so instead of a number.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import redis

from bench.stack import fresh_database, fresh_prefix
from core.db import create_pool, migrate
from core.domain import Period, ScheduleIn
from core.keys import KeySpace, slot_tag
from core.ledger import Ledger
from core.queries import query
from core.settings import Settings

_PGBENCH_SECONDS = 5
_REDIS_REQUESTS = 100_000
_CAPACITY = 100_000
_HOSPITAL, _DEPARTMENT = "ref-h", "ref-d"
_VISIT = dt.date(2030, 1, 1)


@dataclass
class References:
    pgbench_tps: float | None = None
    redis_benchmark_rps: float | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        def show(value: float | None) -> str:
            return "not measured" if value is None else f"{value:,.0f}/s"

        lines = [
            f"reference: pgbench, pg-pessimistic's transaction on one schedule: "
            f"{show(self.pgbench_tps)}",
            f"reference: redis-benchmark, redis-lua's take script: "
            f"{show(self.redis_benchmark_rps)}",
        ]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


def measure_references(redis_url: str, database_url: str, clients: int) -> References:
    found = References()
    pg_clients = Settings().pg_pool_max
    found.pgbench_tps = _guarded(found, "pgbench", lambda: _pgbench(database_url, pg_clients))
    found.redis_benchmark_rps = _guarded(
        found, "redis-benchmark", lambda: _redis_benchmark(redis_url, clients)
    )
    return found


def _guarded(found: References, tool: str, measure: Callable[[], float]) -> float | None:
    if _tool(tool) is None:
        found.notes.append(f"{tool} is not installed; skipped")
        return None
    try:
        return measure()
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        found.notes.append(f"{tool} failed: {exc}")
        return None


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found is None and name == "pgbench":
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)
        found = str(candidates[0]) if candidates else None
    return found


# --- pgbench -------------------------------------------------------------------------------


def pgbench_script(schedule_id: int) -> str:
    """pg-pessimistic's booking, statement for statement, for a new patient every time."""
    patient = "('p' || :patient)"
    common = {2: f"'{_HOSPITAL}'", 3: f"'{_VISIT.isoformat()}'"}
    steps = [
        ("lock_patient_day", {1: patient, **common}),
        ("patient_day_check", {1: patient, **common, 4: f"'{_DEPARTMENT}'", 5: str(schedule_id)}),
        ("lock_schedule", {1: str(schedule_id)}),
        ("take_lowest_free", {1: str(schedule_id), 2: "NULL"}),
        (
            "insert_booking",
            {
                1: str(schedule_id),
                2: patient,
                3: f"'{_HOSPITAL}'",
                4: f"'{_DEPARTMENT}'",
                5: f"'{_VISIT.isoformat()}'",
                6: ":number",
                7: "'BENCH234'",
                8: "gen_random_uuid()",
                9: "NULL",
            },
        ),
    ]
    lines = ["\\set patient random(1, 1000000000)", "BEGIN;"]
    for name, params in steps:
        sql = _strip_comments(_bind(query(name), params)).rstrip().rstrip(";")
        # take_lowest_free's answer becomes :number for the insert, as in the strategy.
        lines.append(sql + (" \\gset" if name == "take_lowest_free" else ";"))
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def _bind(sql: str, params: dict[int, str]) -> str:
    return re.sub(r"\$(\d+)", lambda m: params[int(m.group(1))], sql)


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def _pgbench(server_url: str, clients: int) -> float:
    with fresh_database(server_url, "pgbench") as url, tempfile.TemporaryDirectory() as tmp:
        schedule_id = asyncio.run(_prepare_ledger(url))
        script = Path(tmp) / "book.sql"
        script.write_text(pgbench_script(schedule_id))
        command = [
            str(_tool("pgbench")),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(_PGBENCH_SECONDS),
            "-f",
            str(script),
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        match = re.search(r"tps = ([\d.]+)", done.stdout)
        if done.returncode != 0 or match is None:
            raise ValueError(f"pgbench exited {done.returncode}: {done.stderr[-500:]}")
        return float(match.group(1))


async def _prepare_ledger(url: str) -> int:
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        await migrate(pool)
        item = ScheduleIn(_HOSPITAL, _DEPARTMENT, "ref-doc", _VISIT, Period.AM, _CAPACITY)
        (schedule,) = await Ledger(pool).create_schedules([item], dt.datetime.now(dt.UTC))
        return schedule.id
    finally:
        await pool.close()


# --- redis-benchmark -----------------------------------------------------------------------


def _redis_benchmark(redis_url: str, clients: int) -> float:
    with ExitStack() as stack:
        prefix = stack.enter_context(fresh_prefix(redis_url, "reference"))
        client = redis.Redis.from_url(redis_url)
        stack.callback(client.close)
        keys = KeySpace(prefix, "redis-lua").slot(slot_tag(_HOSPITAL, _VISIT))
        schedule = "1"
        client.hset(keys.slot, mapping={"loaded": 1, "max_per_day": 2, "max_per_department": 1})
        client.sadd(keys.schedules, schedule)
        for start in range(1, _REDIS_REQUESTS + 1, 10_000):
            chunk = range(start, min(start + 10_000, _REDIS_REQUESTS + 1))
            client.zadd(keys.free(schedule), {str(n): n for n in chunk})
        sha = client.script_load(files("core.lua").joinpath("take.lua").read_text())
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        script_keys = [
            keys.slot,
            keys.schedules,
            keys.free(schedule),
            keys.blacklist,
            keys.patient("p__rand_int__"),
            keys.leases,
            keys.lease_records,
            keys.in_flight,
        ]
        script_args = [
            schedule,
            "p__rand_int__",
            _DEPARTMENT,
            "r__rand_int__",
            str(now_ms),
            str(now_ms + 600_000),
        ]
        parts = urlsplit(redis_url)
        command = [
            str(_tool("redis-benchmark")),
            "-h",
            parts.hostname or "127.0.0.1",
            "-p",
            str(parts.port or 6379),
            "-c",
            str(clients),
            "-n",
            str(_REDIS_REQUESTS),
            "-r",
            "1000000000",
            "-q",
            "--csv",
            "EVALSHA",
            sha,
            str(len(script_keys)),
            *script_keys,
            *script_args,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        match = re.search(r'"EVALSHA[^"]*","([\d.]+)"', done.stdout)
        if done.returncode != 0 or match is None:
            raise ValueError(
                f"redis-benchmark exited {done.returncode}: {done.stdout[-300:]}"
                f"{done.stderr[-300:]}"
            )
        return float(match.group(1))
