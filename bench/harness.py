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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench import loadgen, phases, report
from bench.fairness import Fairness, fairness
from bench.phases import Call, Encoder, PhaseResult, Workload
from bench.reference import References, measure_references
from bench.seed import AdminClient, SchedulePlan, SeededSchedule, new_run_id, new_secret, opening_in
from bench.stack import CpuMeter, ServerProcess, describe_machine, fresh_database, fresh_prefix
from core.services import running_services
from loadtest.invariants import Verdict, evaluate
from loadtest.tally import Tally
from strategies import STRATEGIES

SCENARIOS = ("flash", "hot", "churn", "sustained")
HOT_SHARE = 0.9
# Ratios the project promises (see results/README.md).
TARGETS = {
    "sold_out_vs_ceiling": 0.90,
    "redis_lua_bookings_vs_ceiling": 0.60,
    "pg_pessimistic_vs_pgbench": 0.90,
    "hot_loss_max": 0.20,
}
HOT_LOSS_STRATEGIES = ("pg-skip-locked", "redis-lua", "redis-queue")


@dataclass(frozen=True)
class BenchConfig:
    strategies: list[str]
    scenario: str
    users: int
    capacity: int
    schedules: int
    duration: float
    workers: int
    connections: int
    throughput_requests: int
    booking_requests: int
    # Flat-out phases send for this long; a crowd phase may take up to the maximum.
    phase_seconds: float
    max_phase_seconds: float
    reference: bool
    quick: bool
    results: Path

    @property
    def phase_names(self) -> list[str]:
        crowd = ["crowd", "churn"] if self.scenario == "churn" else ["crowd"]
        return ["ceiling", "sold_out", "spread", "hot", *crowd, "verify"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="comma-separated strategy names (default: every registered one)",
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="flash",
        help="the crowd to measure (default: flash)",
    )
    parser.add_argument("--users", type=int, help="patients in the crowd (default 10000)")
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
        "--quick", action="store_true", help="the bounded CI smoke: a crowd of 1000 on 100 numbers"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="where to write the JSON, Markdown and PNG files",
    )


def config_from(args: argparse.Namespace) -> BenchConfig:
    quick = bool(args.quick)
    strategies = [s.strip() for s in str(args.strategies).split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES and ":" not in s]
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    default_duration = 10.0 if args.scenario == "sustained" else 1.0
    return BenchConfig(
        strategies=strategies,
        scenario=args.scenario,
        users=args.users or (1000 if quick else 10_000),
        capacity=args.capacity or (10 if quick else 100),
        schedules=args.schedules or 10,
        duration=args.duration or default_duration,
        workers=args.workers,
        connections=args.connections,
        throughput_requests=5000 if quick else 20_000,
        booking_requests=2000 if quick else 10_000,
        phase_seconds=1.5 if quick else 3.0,
        max_phase_seconds=120.0,
        reference=bool(args.reference),
        quick=quick,
        results=args.results,
    )


@dataclass
class StrategyResult:
    strategy: str
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    verdict: Verdict | None = None
    fairness: Fairness | None = None
    sold: int = 0
    numbers: int = 0
    failure: str | None = None
    driver: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and self.verdict is not None and self.verdict.ok

    def ratio(self, phase: str) -> float | None:
        found = self.phases.get(phase)
        return found.ratio_to_ceiling if found else None

    def hot_loss(self) -> float | None:
        spread, hot = self.phases.get("spread"), self.phases.get("hot")
        if not spread or not hot or not spread.throughput:
            return None
        return 1 - hot.throughput / spread.throughput

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "ok": self.ok,
            "failure": self.failure,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "fairness": self.fairness.to_dict() if self.fairness else None,
            "numbers": self.numbers,
            "sold": self.sold,
            "hot_loss": self.hot_loss(),
            "phases": {name: p.to_dict() for name, p in self.phases.items()},
        }


# --- one strategy --------------------------------------------------------------------------


class StrategyBench:
    def __init__(
        self,
        config: BenchConfig,
        server: ServerProcess,
        secret: str,
        meter: CpuMeter,
        advance: Callable[[str], None],
        progress: Callable[[int, int], None],
    ) -> None:
        self.config = config
        self.server = server
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
        self.measure(phases.ceiling(self.encoder, config.throughput_requests), flat_out=True)
        if self.probe_driver:
            self.result.driver = compare_drivers(self.server.url, self.result.phases["ceiling"])
        self.measure(self.sold_out_workload(), book=True, flat_out=True)
        count = config.booking_requests
        # Capacity to spare everywhere, so every answer is a booking: 1/10 of the bookings
        # plus half again for each spread schedule; all of them for the hot one.
        share = count // 10 + count // 20 + 10
        spread = self.seed("spread", 10, share)
        hot = self.seed("hot", 1, count) + self.seed("hot-rest", 9, share)
        for name, plan, hot_share in (("spread", spread, 0.0), ("hot", hot, HOT_SHARE)):
            # One booking per schedule first: the phase then measures bookings, not the
            # first touch of each schedule (caches, loading it into Redis).
            self.book_one_each(name, plan)
            workload = phases.crowd(
                self.encoder, name, _ids(plan), count, loadgen.burst(count), hot_share=hot_share
            )
            self.measure(workload, book=True, flat_out=True)
        self.crowd()
        ceiling = self.result.phases["ceiling"].throughput
        for phase in self.result.phases.values():
            phase.ratio_to_ceiling = phase.throughput / ceiling if ceiling else None
        self.verify()
        return self.result

    def crowd(self) -> None:
        config = self.config
        if config.scenario == "sustained":
            plan = self.seed("crowd", config.schedules, config.capacity)
            workload = phases.sustained(self.encoder, _ids(plan), config.users, config.duration)
            self.measure(workload, book=True)
            return
        # The crowd gathers before the opening and arrives within `duration` after it.
        opens_at = opening_in(1.0)
        plan = self.seed("crowd", config.schedules, config.capacity, opens_at=opens_at)
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

    def sold_out_workload(self) -> Workload:
        """One schedule of one number, booked once; then a crowd of new patients asks for it."""
        (schedule,) = self.seed("soldout", 1, 1)
        self.book_one_each("soldout", [schedule])
        count = self.config.throughput_requests
        return phases.crowd(self.encoder, "sold_out", [schedule.id], count, loadgen.burst(count))

    def book_one_each(self, name: str, plan: list[SeededSchedule]) -> None:
        workload = Workload(f"{name}-first")
        for i, schedule in enumerate(plan):
            patient = f"{name}-first-{i}"
            call = Call(phases.BOOK, schedule.id, patient)
            workload.add(self.encoder.book(schedule.id, patient), 0.0, call)
        self.run_shot(workload, book=True)

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
        result = phases.summarise(workload, shot)
        result.cpu_seconds = CpuMeter.delta(before, self.meter.sample())
        self.result.phases[workload.name] = result
        return shot

    def run_shot(
        self, workload: Workload, *, book: bool, send_for: float | None = None
    ) -> loadgen.Shot:
        total = len(workload.requests)
        shot = loadgen.run(
            ("127.0.0.1", self.server.port),
            workload.requests,
            workload.arrivals,
            connections=self.config.connections,
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
    generator_cpu = ceiling.cpu_seconds.get("generator", 0.0)
    loadgen = {
        "rps": ceiling.throughput,
        "cpu_percent": ceiling.cpu_percent().get("generator"),
        "cpu_us_per_request": 1e6 * generator_cpu / max(ceiling.answered, 1),
    }
    locust["cpu_us_per_request"] = 1e4 * locust["cpu_percent"] / max(locust["rps"], 1e-9)
    locust_keeps_up = (
        locust["rps"] >= 0.9 * loadgen["rps"]
        and locust["cpu_us_per_request"] <= loadgen["cpu_us_per_request"]
    )
    why = (
        f"Locust reached {locust['rps']:,.0f}/s against /ceiling at "
        f"{locust['cpu_us_per_request']:.0f} µs of its own CPU per request; bench/loadgen.py "
        f"{loadgen['rps']:,.0f}/s at {loadgen['cpu_us_per_request']:.0f} µs"
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


class PhaseProgress:
    """One tqdm bar for the whole run: a step per phase, the answers so far beside it."""

    def __init__(self, bar: tqdm, strategy: str, phase_count: int) -> None:
        self.bar = bar
        self.strategy = strategy
        self.left = phase_count
        self.current: str | None = None

    def advance(self, phase: str) -> None:
        if self.current is not None and self.left > 1:
            self.bar.update(1)
            self.left -= 1
        self.current = phase
        self.bar.set_description(f"{self.strategy}: {phase}")

    def progress(self, done: int, total: int) -> None:
        self.bar.set_postfix_str(f"{done}/{total} answered")

    def finish(self) -> None:
        self.bar.update(self.left)
        self.left = 0


def bench_strategy(
    first: bool,
    config: BenchConfig,
    strategy: str,
    redis_url: str,
    database_url: str,
    secret: str,
    workdir: Path,
    bar: tqdm,
) -> StrategyResult:
    label = strategy.replace(":", "-").replace(".", "-").replace("_", "-").lower()
    steps = PhaseProgress(bar, strategy, len(config.phase_names))
    with fresh_database(database_url, label) as database, fresh_prefix(redis_url, label) as prefix:
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database,
            "SLOTRUSH_SECRET": secret,
            "SLOTRUSH_REDIS_PREFIX": prefix,
        }
        server = ServerProcess(strategy, config.workers, env, workdir / f"{label}.log")
        try:
            steps.advance("starting")
            server.start(secret)
            meter = CpuMeter.for_stack(server, redis_url, database)
            bench = StrategyBench(config, server, secret, meter, steps.advance, steps.progress)
            bench.probe_driver = first
            return bench.run()
        except Exception as exc:  # one broken strategy must not hide the others' results
            tail = server.log_tail(1500)
            return StrategyResult(strategy, failure=f"{type(exc).__name__}: {exc}\n{tail}")
        finally:
            server.stop()
            steps.finish()


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    config.results.mkdir(parents=True, exist_ok=True)
    secret = new_secret()
    started = dt.datetime.now(dt.UTC)
    with (
        running_services(os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")) as urls,
        tempfile.TemporaryDirectory(prefix="slotrush-bench-") as workdir,
    ):
        machine = describe_machine(urls.redis_url, urls.database_url)
        total = len(config.strategies) * len(config.phase_names)
        with tqdm(total=total, unit="phase", dynamic_ncols=True) as bar:
            results = [
                bench_strategy(
                    i == 0,
                    config,
                    name,
                    urls.redis_url,
                    urls.database_url,
                    secret,
                    Path(workdir),
                    bar,
                )
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


# --- results -------------------------------------------------------------------------------


def targets(results: list[StrategyResult], references: References | None) -> list[dict[str, Any]]:
    """Each promised ratio, measured, with whether this run met it."""
    found: list[dict[str, Any]] = []

    def add(name: str, strategy: str, value: float | None, threshold: float, higher: bool) -> None:
        met = None if value is None else (value >= threshold if higher else value < threshold)
        found.append(
            {
                "target": name,
                "strategy": strategy,
                "value": value,
                "threshold": threshold,
                "met": met,
            }
        )

    for r in results:
        add(
            "sold-out throughput / ceiling",
            r.strategy,
            r.ratio("sold_out"),
            TARGETS["sold_out_vs_ceiling"],
            True,
        )
        if r.strategy == "redis-lua":
            add(
                "booking throughput / ceiling",
                r.strategy,
                r.ratio("spread"),
                TARGETS["redis_lua_bookings_vs_ceiling"],
                True,
            )
        if r.strategy in HOT_LOSS_STRATEGIES:
            add(
                "throughput lost when 90% target one schedule",
                r.strategy,
                r.hot_loss(),
                TARGETS["hot_loss_max"],
                False,
            )
        if r.strategy == "pg-pessimistic" and references is not None and references.pgbench_tps:
            single = r.phases.get("hot")
            value = single.throughput / references.pgbench_tps if single else None
            add(
                "hot-schedule bookings / pgbench",
                r.strategy,
                value,
                TARGETS["pg_pessimistic_vs_pgbench"],
                True,
            )
    return found


def build_record(
    config: BenchConfig,
    machine: dict[str, Any],
    started: dt.datetime,
    results: list[StrategyResult],
    references: References | None,
) -> dict[str, Any]:
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    return {
        "scenario": config.scenario,
        "started": started.isoformat(),
        "ok": all(r.ok for r in results),
        "settings": settings,
        "machine": machine,
        "generator": "bench/loadgen.py: open loop, asyncio+uvloop, raw HTTP/1.1 keep-alive",
        "driver": next((r.driver for r in results if r.driver), None),
        "strategies": [r.to_dict() for r in results],
        "references": asdict(references) if references else None,
        "targets": targets(results, references),
    }


def write_results(
    config: BenchConfig,
    record: dict[str, Any],
    results: list[StrategyResult],
    host: str,
    started: dt.datetime,
) -> list[Path]:
    stem = f"{started:%Y-%m-%d}-{_safe(host)}-{config.scenario}"
    base = config.results / stem
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    throughput_png = config.results / f"{stem}-throughput.png"
    cdf_png = config.results / f"{stem}-latency.png"
    report.write_json(json_path, record)
    measured = [r for r in results if "crowd" in r.phases and "ceiling" in r.phases]
    title = (
        f"{config.scenario}: {config.users} patients, {config.schedules}x{config.capacity} numbers"
    )
    report.plot_throughput(
        throughput_png,
        [r.strategy for r in measured],
        [r.phases["crowd"].throughput for r in measured],
        [r.phases["crowd"].latency_ms["p99"] for r in measured],
        [r.phases["ceiling"].throughput for r in measured],
        title,
    )
    report.plot_cdfs(
        cdf_png,
        {r.strategy: r.phases["crowd"].cdf for r in measured},
        f"latency from arrival, {title}",
    )
    md_path.write_text(render_markdown(record, results, throughput_png.name, cdf_png.name))
    report.update_index(config.results)
    return [json_path, md_path, throughput_png, cdf_png]


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text)


def render_tables(
    results: list[StrategyResult],
    references: References | None,
    found_targets: list[dict[str, Any]],
) -> str:
    crowd_rows, throughput_rows = [], []
    for r in results:
        crowd = r.phases.get("crowd")
        fair = r.fairness
        verdict = (
            "FAIL (did not run)"
            if r.failure
            else (r.verdict.summary().split(":")[0] if r.verdict else "-")
        )
        crowd_rows.append(
            [
                r.strategy,
                verdict,
                f"{r.sold}/{r.numbers}" if r.numbers else None,
                f"{crowd.answered}/{crowd.requests}" if crowd else None,
                crowd.throughput if crowd else None,
                report.percent(r.ratio("crowd")),
                *(crowd.latency_ms[k] if crowd else None for k in ("p50", "p90", "p99", "p99_9")),
                crowd.retries if crowd else None,
                *(_violations(r.verdict)),
                fair.first_arrivals_share if fair else None,
                f"{fair.spearman:.2f} ({fair.spearman_fifo:.2f})"
                if fair and fair.spearman is not None and fair.spearman_fifo is not None
                else None,
            ]
        )
        throughput_rows.append(
            [
                r.strategy,
                *(_rate(r, name) for name in ("ceiling", "sold_out", "spread", "hot")),
                report.percent(r.hot_loss()),
                *(
                    _cpu(r, "crowd", party)
                    for party in ("server", "redis", "postgres", "generator", "others")
                ),
            ]
        )
    parts = [
        report.table(
            [
                "strategy",
                "invariants",
                "sold",
                "answered",
                "answers/s",
                "of ceiling",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "p99.9 ms",
                "busy retries",
                "oversold",
                "lost",
                "undersold",
                "rule breaks",
                "first-C share",
                "spearman (fifo)",
            ],
            crowd_rows,
        ),
        "",
        report.table(
            [
                "strategy",
                "ceiling/s",
                "sold-out/s (ceil)",
                "bookings/s (ceil)",
                "hot bookings/s (ceil)",
                "hot loss",
                "server CPU",
                "redis CPU",
                "postgres CPU",
                "generator CPU",
                "other processes CPU",
            ],
            throughput_rows,
        ),
    ]
    if references is not None:
        parts += ["", references.describe()]
    if found_targets:
        parts += ["", "targets:", *(_target_line(t) for t in found_targets)]
    return "\n".join(parts)


def _target_line(target: dict[str, Any]) -> str:
    state = {True: "MET ", False: "MISS", None: "n/a "}[target["met"]]
    value = "-" if target["value"] is None else f"{target['value']:.2f}"
    relation = ">=" if "lost" not in target["target"] else "<"
    return (
        f"  {state} {target['strategy']}: {target['target']} = {value} "
        f"(target {relation} {target['threshold']:.2f})"
    )


def _violations(verdict: Verdict | None) -> list[int | None]:
    if verdict is None:
        return [None] * 4
    rules = verdict.duplicate_numbers + verdict.duplicate_patients + verdict.limit_violations
    return [verdict.oversold, verdict.lost, verdict.undersold, rules]


def _rate(result: StrategyResult, phase: str) -> str | None:
    found = result.phases.get(phase)
    if found is None:
        return None
    ratio = report.percent(found.ratio_to_ceiling) if phase != "ceiling" else None
    return f"{found.throughput:,.0f}" + (f" ({ratio})" if ratio else "")


def _cpu(result: StrategyResult, phase: str, party: str) -> str | None:
    found = result.phases.get(phase)
    if found is None or party not in found.cpu_seconds:
        return None
    return f"{found.cpu_percent()[party]:.0f}%"


def render_markdown(
    record: dict[str, Any], results: list[StrategyResult], throughput_png: str, cdf_png: str
) -> str:
    machine, settings = record["machine"], record["settings"]
    references = record["references"]
    lines = [
        f"# {record['scenario']} crowd, {record['started'][:16]} UTC, {machine['host']}",
        "",
        f"{settings['users']} patients on {settings['schedules']} schedules of "
        f"{settings['capacity']} numbers, arriving within {settings['duration']} s; "
        f"server workers {settings['workers']}; generator connections "
        f"{settings['connections']}. Invariants: **{'PASS' if record['ok'] else 'FAIL'}**.",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB;"
        f" Python {machine['python']}, Redis {machine['redis']}, PostgreSQL "
        f"{machine['postgresql']}; commit {str(machine['commit'])[:12]}"
        f"{' (uncommitted changes)' if machine['dirty'] else ''}; load average at start "
        f"{', '.join(str(x) for x in machine['load_average_at_start'])}.",
        "",
        "Latencies are from each patient's planned arrival to the final answer (busy answers "
        "retried after Retry-After), so they include queueing. CPU is per cent of one core "
        'during the crowd phase; "other processes" is what the rest of the machine used '
        "meanwhile (the machine's busy time less the four parties).",
        "",
        "```",
        render_tables(results, None, record["targets"]),
        "```",
        "",
        f"Load generator: bench/loadgen.py. {record['driver']['why'] if record['driver'] else ''}",
        "",
        f"![throughput and p99]({throughput_png})",
        f"![latency CDF]({cdf_png})",
    ]
    if references:
        lines += ["", "## References", "", "```", json.dumps(references, indent=2), "```"]
    lines += ["", "## Answers by code (crowd phase)", ""]
    for r in results:
        crowd = r.phases.get("crowd")
        if crowd:
            codes = ", ".join(f"{k}: {v}" for k, v in crowd.codes.items())
            lines.append(f"- **{r.strategy}**: {codes}")
        if r.failure:
            lines.append(f"- **{r.strategy}** did not run: `{r.failure.splitlines()[0]}`")
    return "\n".join(lines) + "\n"
