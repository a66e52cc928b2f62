"""`slotrush bench`: every strategy under the same flash crowd, on the same machine.

For each strategy: a fresh database and Redis key prefix, `slotrush serve` as a subprocess on
a free port, then the phases below, each driven by the open-loop generator of bench/loadgen.py
and timed with the CPU of every party:

  ceiling     GET /ceiling flat out: what this server configuration can answer at all
  sold_out    POSTs to a sold-out schedule, flat out
  spread      bookings that never run out, spread over 10 schedules, flat out
  hot         the same with 90% of them on one schedule
  crowd       the scenario (default: the flash crowd, every patient arriving within a second
              of the opening), every patient answered
  overload    bookings flat out to measure what the strategy sustains, then three times that
              rate for a few seconds, sent once each: answered within the deadline? server
              memory flat? (bench/overload.py)
  verify      GET of every confirmed booking, then the audit and the invariant verdict

"Flat out" phases release all their requests at once and send for a few seconds; what was
not sent by then is dropped, not counted.

Throughputs are also given as a ratio of the ceiling, so numbers from different machines
compare. Results go to results/ (JSON, Markdown, PNG); the exit status is non-zero if any
invariant broke.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import free_memory, instances, lifecycle, loadgen, phases, shards, waiting_room
from bench.config import (
    FULL_BOOKING_REQUESTS,
    FULL_CROWD,
    FULL_THROUGHPUT_REQUESTS,
    QUICK_SIZE,
    SCALE_CROWDS,
    SCENARIOS,
    BenchConfig,
    scaled,
)
from bench.curves import run_curves, write_curves
from bench.embedded import ServiceUrls, running_services
from bench.fairness import fairness
from bench.ledger_size import ledger_footprint
from bench.overload import Overload, RssSampler, shed_between, shed_counts, sustainable_rate
from bench.phases import Call, Encoder, PhaseResult, Workload
from bench.progress import Progress, run_progress
from bench.reference import measure_references
from bench.rss import rss_by_process
from bench.stack import (
    CpuMeter,
    ServerProcess,
    describe_machine,
    redis_client,
    serving,
    settle,
)
from bench.summary import StrategyResult, build_record, render_tables, write_results
from core.settings import Settings
from loadtest.client.invariants import evaluate
from loadtest.client.seed import AdminClient, SchedulePlan, SeededSchedule, new_run_id, opening_in
from loadtest.client.tally import Tally
from loadtest.client.tokens import new_secret
from strategies import STRATEGIES
from strategies.redis_gate.gate import RedisGate

HOT_SHARE = 0.9
WAITING_ROOM = "waiting-room"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strategies",
        help="comma-separated strategy names (default: every registered one; redis-lua "
        "for --scenario memory and scale)",
    )
    parser.add_argument(
        "--scenario",
        choices=(*SCENARIOS, WAITING_ROOM, lifecycle.LIFECYCLE),
        default="flash",
        help="the crowd to measure (default: flash); memory: each worker's RSS through "
        "--patients new patients; scale: crowds of 1,000 to 100,000 (times --size) and 1 to "
        "10,000 open schedules; waiting-room: a crowd behind a waiting room, on one strategy "
        "(bench/waiting_room.py); lifecycle: lapse to reuse of paid holds and day-end "
        "settlement of 100,000 bookings (times --size), on one strategy (bench/lifecycle.py)",
    )
    parser.add_argument(
        "--patients",
        type=int,
        default=200_000,
        help="--scenario memory: new patients to book (default 200000; the run stops after "
        "15 minutes whatever the count)",
    )
    parser.add_argument(
        "--size",
        type=float,
        help="scales every phase's requests: 1 (the default) fires 30,000-request flat-out "
        "bursts, 10,000-request booking bursts and a crowd of 10,000; 0.1 a tenth of each",
    )
    parser.add_argument(
        "--shards",
        help=(
            "comma-separated primaries per Redis Cluster, like 1,3: the Redis strategies on "
            "an embedded cluster of each size, one table (bench/shards.py)"
        ),
    )
    parser.add_argument(
        "--instances",
        type=int,
        help=(
            "run 1..N `slotrush serve` processes behind HAProxy and report the scaling table "
            "(the first strategy of --strategies; bench/instances.py)"
        ),
    )
    parser.add_argument(
        "--generators",
        type=int,
        default=1,
        help="--instances: Locust worker processes under one master (distributed Locust)",
    )
    parser.add_argument(
        "--admit-rate",
        type=float,
        help="waiting-room: admissions per second (default 300)",
    )
    parser.add_argument(
        "--users",
        type=int,
        help="patients in the crowd alone (default 10000 times --size; waiting-room 5000)",
    )
    parser.add_argument("--capacity", type=int, help="numbers per schedule (default 100)")
    parser.add_argument("--schedules", type=int, help="schedules in the crowd (default 10)")
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds over which the crowd arrives (default 1; sustained 10)",
    )
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument(
        "--connections", type=int, default=128, help="keep-alive connections of the load generator"
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also run pgbench and redis-benchmark on the same operation",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the bounded CI smoke: --size 0.1 (a crowd of 1000 on 10 schedules of 10 "
        "numbers, 3,000-request bursts), half-second slices, a 3 s overload",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="where to write the JSON, Markdown and PNG files",
    )


def config_from(args: argparse.Namespace) -> BenchConfig:
    quick = bool(args.quick)
    growth = args.scenario in ("memory", "scale")
    named = args.strategies or ("redis-lua" if growth else ",".join(STRATEGIES))
    strategies = [s.strip() for s in named.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES and ":" not in s]
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    default_duration = 10.0 if args.scenario == "sustained" else 1.0
    size = args.size or (QUICK_SIZE if quick else 1.0)
    if size <= 0:
        raise SystemExit(f"--size must be above 0, not {size}")
    return BenchConfig(
        strategies=strategies,
        scenario=args.scenario,
        size=size,
        users=args.users or scaled(FULL_CROWD, size),
        capacity=args.capacity or (10 if quick else 100),
        schedules=args.schedules or 10,
        duration=args.duration or default_duration,
        workers=args.workers,
        connections=args.connections,
        throughput_requests=scaled(FULL_THROUGHPUT_REQUESTS, size),
        booking_requests=scaled(FULL_BOOKING_REQUESTS, size),
        phase_seconds=1.5 if quick else 3.0,
        slice_seconds=0.5 if quick else 1.0,
        slices=3,
        max_phase_seconds=120.0,
        overload_factor=3.0,
        overload_seconds=3.0 if quick else 5.0,
        overload_connections=1024,
        reference=bool(args.reference),
        quick=quick,
        results=args.results,
        memory_patients=args.patients,
        scale_crowds=tuple(scaled(crowd, size) for crowd in SCALE_CROWDS),
    )


# --- one strategy --------------------------------------------------------------------------


class StrategyBench:
    def __init__(
        self,
        config: BenchConfig,
        server: ServerProcess,
        database: str,
        secret: str,
        meter: CpuMeter,
        advance: Callable[[str], None],
        progress: Callable[[int, int], None],
    ) -> None:
        self.config = config
        self.server = server
        self.database = database
        self.meter = meter
        self.admin = AdminClient(server.url, secret)
        self.encoder = Encoder("127.0.0.1", server.port, secret)
        self.run_id = new_run_id()
        self.result = StrategyResult(server.strategy)
        self.tally = Tally()
        self.probe_driver = False
        self._advance = advance
        self._progress = progress

    def run(self) -> StrategyResult:
        """The flat-out phases first, back to back, so their ratios to the ceiling compare
        numbers measured moments apart; then the crowd and the verdict."""
        config = self.config
        self.result.rss_mib["start"] = rss_by_process(self.server.processes())
        self.measure(phases.ceiling(self.encoder, config.throughput_requests), flat_out=True)
        if self.probe_driver:
            self.result.driver = compare_drivers(self.server.url, self.result.phases["ceiling"])
        self.measure_against_ceiling(self.sold_out_workload(), like_booking=True)
        self.measure_free_number_memory()
        count = config.booking_requests
        # Capacity to spare everywhere, so every answer is a booking: 1/10 of the bookings
        # plus half again for each spread schedule; all of them for the hot one.
        share = count // 10 + count // 20 + 10
        spread = self.seed("spread", 10, share)
        hot = self.seed("hot", 1, count) + self.seed("hot-rest", 9, share)
        for name, plan, hot_share in (("spread", spread, 0.0), ("hot", hot, HOT_SHARE)):
            self.book_one_each(name, plan)
            workload = phases.crowd(
                self.encoder, name, _ids(plan), count, loadgen.burst(count), hot_share=hot_share
            )
            self.measure_against_ceiling(workload)
        self.crowd()
        self.overload()
        ceiling = self.result.phases["ceiling"].throughput
        for phase in self.result.phases.values():
            if phase.ratio_to_ceiling is None and ceiling:
                phase.ratio_to_ceiling = phase.throughput / ceiling
        self.verify()
        self.result.rss_mib["end"] = rss_by_process(self.server.processes())
        return self.result

    def crowd(self) -> None:
        config = self.config
        if config.scenario == "sustained":
            plan = self.seed("crowd", config.schedules, config.capacity)
            settle(self.database)
            workload = phases.sustained(self.encoder, _ids(plan), config.users, config.duration)
            self.measure(workload, book=True)
            return
        # The crowd gathers before the opening and arrives within `duration` after it.
        opens_at = opening_in(1.0)
        plan = self.seed("crowd", config.schedules, config.capacity, opens_at=opens_at)
        settle(self.database)
        hot_share = HOT_SHARE if config.scenario == "hot" else 0.0
        workload = phases.crowd(
            self.encoder,
            "crowd",
            _ids(plan),
            config.users,
            loadgen.spread(config.users, config.duration),
            hot_share=hot_share,
        )
        time.sleep(max((opens_at - dt.datetime.now(dt.UTC)).total_seconds(), 0.0))
        shot = self.measure(workload, book=True)
        capacity = {s.id: s.capacity for s in plan}
        self.result.fairness = fairness(
            [c.schedule_id or "" for c in workload.calls], phases.successes(shot), capacity
        )
        self.result.numbers = sum(capacity.values())
        if config.scenario == "churn":
            losers = [c for c, s in zip(workload.calls, shot.status, strict=True) if s == 409]
            self.measure(
                phases.churn(self.encoder, self.tally, losers, config.duration, 0.2), book=True
            )
        active = {c.booking_id for c in self.tally.active()}
        ours = set(capacity)
        self.result.sold = sum(
            1
            for c in self.tally.confirmed.values()
            if c.booking_id in active and c.schedule_id in ours
        )

    def overload(self) -> None:
        """What the strategy sustains, measured now, then `overload_factor` times that rate
        on schedules that never run out (bench/overload.py)."""
        config = self.config
        self._advance("overload")
        count = config.booking_requests
        sustain = self.seed("sustain", 10, count // 10 + 10)
        self.book_one_each("sustain", sustain)
        flat_out = phases.crowd(self.encoder, "sustain", _ids(sustain), count, loadgen.burst(count))
        rate = sustainable_rate(self.run_shot(flat_out, book=True, send_for=config.phase_seconds))
        offered = config.overload_factor * rate
        arrivals = max(round(offered * config.overload_seconds), 1)
        plan = self.seed("overload", 10, arrivals // 10 + 10)
        self.book_one_each("overload", plan)
        spread = loadgen.spread(arrivals, config.overload_seconds)
        workload = phases.crowd(self.encoder, "overload", _ids(plan), arrivals, spread)
        shed_before, cpu_before = shed_counts(self.server.url), self.meter.sample()
        with RssSampler(self.server.processes) as rss:
            shot = self.run_shot(
                workload, book=True, connections=config.overload_connections, max_retries=0
            )
        phase = phases.summarise("overload", shot)
        phase.cpu_seconds = CpuMeter.delta(cpu_before, self.meter.sample())
        self.result.overload = Overload(
            sustainable_rps=rate,
            offered_rps=offered,
            seconds=config.overload_seconds,
            deadline_s=Settings.from_env().request_timeout,
            phase=phase,
            rss_mib=rss.samples,
            shed=shed_between(shed_before, shed_counts(self.server.url)),
        )

    def sold_out_workload(self) -> Workload:
        """One schedule of one number, booked once; then a crowd of new patients asks for it."""
        (schedule,) = self.seed("soldout", 1, 1)
        self.book_one_each("soldout", [schedule])
        count = self.config.throughput_requests
        return phases.crowd(self.encoder, "sold_out", [schedule.id], count, loadgen.burst(count))

    def measure_free_number_memory(self) -> None:
        """A Redis gate's bytes per free number, on a large schedule loaded by one booking."""
        if not issubclass(STRATEGIES[self.server.strategy], RedisGate):
            return
        opens_at = opening_in(0)
        plan = SchedulePlan(self.run_id, 1, free_memory.NUMBERS, opens_at, label="memory")
        (schedule,) = self.admin.create_schedules(plan)
        self.book_one_each("memory", [schedule])
        client = redis_client(self.server.env["REDIS_URL"])
        try:
            self.result.free_memory = free_memory.measure(
                client,
                self.server.env["SLOTRUSH_REDIS_PREFIX"],
                self.server.strategy,
                schedule,
                plan.visit_date,
            )
        finally:
            client.close()

    def book_one_each(self, name: str, plan: list[SeededSchedule]) -> None:
        """One booking per schedule, then the ledger settled (bench.stack.settle): the phase
        that follows measures bookings, not the first touch of each schedule."""
        workload = Workload(f"{name}-first")
        for i, schedule in enumerate(plan):
            patient = f"{name}-first-{i}"
            call = Call(phases.BOOK, schedule.id, patient)
            workload.add(self.encoder.book(schedule.id, patient), 0.0, call)
        self.run_shot(workload, book=True)
        settle(self.database)

    def verify(self) -> None:
        self._advance("verify")
        workload = phases.verification(self.encoder, self.tally)
        seen: dict[str, Any] = {}
        for _ in range(3):  # a GET that got no answer is asked again
            missing = Workload("verify")
            for request, call in zip(workload.requests, workload.calls, strict=True):
                if call.booking_id not in seen:
                    missing.add(request, 0.0, call)
            if not missing.requests:
                break
            shot = loadgen.run(
                ("127.0.0.1", self.server.port),
                missing.requests,
                missing.arrivals,
                connections=self.config.connections,
            )
            seen.update(phases.fetched_bookings(missing, shot))
        self.result.verdict = evaluate(self.tally, self.admin.audit(), seen)

    # --- plumbing ----------------------------------------------------------------------

    def seed(
        self, label: str, count: int, capacity: int, opens_at: dt.datetime | None = None
    ) -> list[SeededSchedule]:
        plan = SchedulePlan(self.run_id, count, capacity, opens_at or opening_in(0), label=label)
        return self.admin.create_schedules(plan)

    def measure(
        self, workload: Workload, *, book: bool = False, flat_out: bool = False
    ) -> loadgen.Shot:
        """Run one phase, keep its summary, and hand back the raw answers. A flat-out phase
        sends for `phase_seconds` and drops what it had no time to send."""
        self._advance(workload.name)
        before = self.meter.sample()
        send_for = self.config.phase_seconds if flat_out else None
        shot = self.run_shot(workload, book=book, send_for=send_for)
        result = phases.summarise(workload.name, shot)
        result.cpu_seconds = CpuMeter.delta(before, self.meter.sample())
        self.result.phases[workload.name] = result
        return shot

    def measure_against_ceiling(self, workload: Workload, *, like_booking: bool = False) -> None:
        """A flat-out phase in slices, each right after a slice of GET /ceiling: other load on
        the machine then weighs on both sides of each ratio alike. The phase's ratio is the
        median of its slices' ratios. `like_booking` adds a slice of the ceiling asked with a
        booking's headers and body, and the ratio to that: what the phase costs beyond the
        HTTP parsing of its requests."""
        self._advance(workload.name)
        count = self.config.throughput_requests
        ceiling = phases.ceiling(self.encoder, count)
        shaped = phases.ceiling(self.encoder, count, like_booking=True) if like_booking else None
        seconds = self.config.slice_seconds
        shots: list[loadgen.Shot] = []
        ceilings: list[float] = []
        ratios: list[float] = []
        shaped_ceilings: list[float] = []
        shaped_ratios: list[float] = []
        cpu: Counter[str] = Counter()
        # Each slice gets its share of the requests: a slice that ran faster than planned
        # must not leave the next ones with nothing to send.
        share = -(-len(workload.requests) // self.config.slices)
        start = 0
        for _ in range(self.config.slices):
            ceilings.append(self.run_shot(ceiling, book=False, send_for=seconds).throughput)
            if shaped is not None:
                shaped_ceilings.append(
                    self.run_shot(shaped, book=False, send_for=seconds).throughput
                )
            before = self.meter.sample()
            shot = self.run_shot(workload.tail(start, share), book=True, send_for=seconds)
            cpu.update(CpuMeter.delta(before, self.meter.sample()))
            start += shot.consumed
            shots.append(shot)
            if ceilings[-1]:
                ratios.append(shot.throughput / ceilings[-1])
            if shaped_ceilings and shaped_ceilings[-1]:
                shaped_ratios.append(shot.throughput / shaped_ceilings[-1])
        result = phases.summarise(workload.name, loadgen.Shot.joined(shots))
        result.cpu_seconds = dict(cpu)
        result.ceiling_slices = ceilings
        result.ratio_to_ceiling = statistics.median(ratios) if ratios else None
        result.booking_shaped_ceiling_slices = shaped_ceilings
        if shaped_ratios:
            result.ratio_to_booking_shaped_ceiling = statistics.median(shaped_ratios)
        self.result.phases[workload.name] = result

    def run_shot(
        self,
        workload: Workload,
        *,
        book: bool,
        send_for: float | None = None,
        connections: int | None = None,
        max_retries: int = loadgen.MAX_RETRIES,
    ) -> loadgen.Shot:
        total = len(workload.requests)
        shot = loadgen.run(
            ("127.0.0.1", self.server.port),
            workload.requests,
            workload.arrivals,
            connections=connections or self.config.connections,
            max_retries=max_retries,
            max_seconds=self.config.max_phase_seconds,
            send_for=send_for,
            progress=lambda done: self._progress(done, total),
        )
        if book:
            phases.record(self.tally, workload, shot)
        return shot


def compare_drivers(url: str, ceiling: PhaseResult) -> dict[str, Any]:
    """Can Locust drive this server? Its probe against GET /ceiling beside the generator's
    ceiling, in CPU per request: on a machine the server shares, a generator that needs more
    CPU per request takes it from the server and lowers every number it reports."""
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.library", "probe", "--host", url, "--seconds", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"used": "bench/loadgen.py", "why": f"the Locust probe failed: {done.stderr[-300:]}"}
    locust = json.loads(lines[-1])
    loadgen_us = 1e6 * ceiling.cpu_seconds.get("generator", 0.0) / max(ceiling.answered, 1)
    loadgen = {
        "rps": ceiling.throughput,
        "cpu_percent": ceiling.cpu_percent().get("generator"),
        "cpu_us_per_request": loadgen_us,
    }
    locust_us = 1e4 * locust["cpu_percent"] / max(locust["rps"], 1e-9)
    locust["cpu_us_per_request"] = locust_us
    locust_keeps_up = locust["rps"] >= 0.9 * ceiling.throughput and locust_us <= loadgen_us
    why = (
        f"Locust reached {locust['rps']:,.0f}/s against /ceiling at {locust_us:.0f} µs of its "
        f"own CPU per request; bench/loadgen.py {ceiling.throughput:,.0f}/s at "
        f"{loadgen_us:.0f} µs"
    )
    return {
        "used": "bench/loadgen.py",
        "locust_keeps_up": locust_keeps_up,
        "why": why,
        "locust": locust,
        "loadgen": loadgen,
    }


def _ids(schedules: list[SeededSchedule]) -> list[str]:
    return [s.id for s in schedules]


def bench_strategy(
    first: bool,
    config: BenchConfig,
    strategy: str,
    urls: ServiceUrls,
    secret: str,
    workdir: Path,
    progress: Progress,
) -> StrategyResult:
    steps = progress.steps(strategy, len(config.phase_names))
    steps.advance("starting")
    server: ServerProcess | None = None
    try:
        with serving(strategy, config.workers, urls, secret, workdir) as (server, database):
            meter = CpuMeter.for_stack(server, urls.redis_url, database)
            bench = StrategyBench(
                config, server, database, secret, meter, steps.advance, steps.progress
            )
            bench.probe_driver = first
            result = bench.run()
            result.ledger = ledger_footprint(database)
            return result
    except Exception as exc:  # one broken strategy must not hide the others' results
        tail = server.log_tail(1500) if server is not None else ""
        return StrategyResult(strategy, failure=f"{type(exc).__name__}: {exc}\n{tail}")
    finally:
        steps.finish()


def run(args: argparse.Namespace) -> int:
    if args.instances:
        strategy = (args.strategies or "redis-lua").split(",")[0]
        crowd = args.users or 2000
        return instances.run(
            args.instances, args.generators, strategy, crowd, args.workers, args.results
        )
    if args.scenario == WAITING_ROOM:
        return waiting_room.run(args.users or 5000, args.workers, args.results, args.admit_rate)
    if args.scenario == lifecycle.LIFECYCLE:
        return lifecycle.run(args)
    config = config_from(args)
    if args.shards:
        if not args.strategies:
            config = replace(config, strategies=shards.redis_strategies())
        return shards.run(config, shards.parse_shards(args.shards), bench_strategy)
    config.results.mkdir(parents=True, exist_ok=True)
    secret = new_secret()
    started = dt.datetime.now(dt.UTC)
    with (
        running_services(os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")) as urls,
        tempfile.TemporaryDirectory(prefix="slotrush-bench-") as workdir,
    ):
        machine = describe_machine(urls.redis_url, urls.database_url)
        if config.scenario in ("memory", "scale"):
            record, text = run_curves(config, urls, secret, Path(workdir), machine, started)
            paths = write_curves(config.results, record)
            print(f"{text}\n{record['verdict']}\n\nwrote " + ", ".join(str(p) for p in paths))
            return 0 if record["ok"] else 1
        total = len(config.strategies) * len(config.phase_names)
        with run_progress(total) as progress:
            results = [
                bench_strategy(i == 0, config, name, urls, secret, Path(workdir), progress)
                for i, name in enumerate(config.strategies)
            ]
        references = (
            measure_references(urls.redis_url, urls.database_url, config.connections)
            if config.reference
            else None
        )
    record = build_record(config, machine, started, results, references)
    paths = write_results(config, record, results, machine["host"], started)
    print(render_tables(results, references, record["targets"]))
    if record["driver"]:
        print(f"\nload generator: {record['driver']['why']}")
    for result in results:
        if result.failure:
            print(f"\n{result.strategy} FAILED: {result.failure}")
        elif result.verdict is not None and not result.verdict.ok:
            print(f"\n{result.strategy}: {result.verdict.report()}")
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0 if all(r.ok for r in results) else 1
