"""`slotrush faults`: every strategy under every fault (or the ones named), a report in
results/; exits 1 if any scenario failed."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from bench.faults.config import CrowdPlan, SuiteConfig
from bench.faults.injectors import FAULT_NAMES, applies
from bench.faults.report import markdown_table, write_report
from bench.faults.result import ScenarioResult
from bench.faults.scenario import run_scenario
from bench.faults.services import Services, embedded_services
from bench.stack import describe_machine
from strategies import STRATEGIES

FULL = SuiteConfig(
    strategies=tuple(sorted(STRATEGIES)),
    faults=FAULT_NAMES,
    crowd=CrowdPlan(patients=300, schedules=6, capacity=80, duration=6.0),
)
# Sized for `make test`: a small crowd, one strike, one worker unless the fault needs more.
QUICK = replace(
    FULL,
    crowd=CrowdPlan(patients=90, schedules=6, capacity=25, duration=3.0),
    strikes=1,
    workers=1,
)


async def run_suite(config: SuiteConfig, services: Services, workdir: Path) -> list[ScenarioResult]:
    results = []
    for strategy in config.strategies:
        for fault in config.faults:
            if not applies(fault, strategy):
                continue
            print(f"faults: {strategy} under {fault} ...", flush=True)
            try:
                result = await run_scenario(services, strategy, fault, config, workdir)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                result = ScenarioResult(strategy, fault, problems=[f"crashed: {exc!r}"])
            print(f"  {'passed' if result.passed else 'FAILED'} in {result.seconds} s", flush=True)
            for problem in result.problems:
                print(f"  - {problem}", flush=True)
            results.append(result)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strategy",
        dest="strategies",
        action="append",
        choices=sorted(STRATEGIES),
        help="a strategy to test (repeatable; default: all)",
    )
    parser.add_argument(
        "--fault",
        dest="faults",
        action="append",
        choices=FAULT_NAMES,
        help="a fault to inject (repeatable; default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="the small crowd and single strike of the CI run"
    )
    parser.add_argument("--patients", type=int, help="patients in the crowd")
    parser.add_argument("--strikes", type=int, help="strikes per timed fault")
    parser.add_argument("--workers", type=int, help="server processes (worker-kill takes 2+)")
    parser.add_argument("--drop-rate", type=float, help="share of responses the proxy drops")
    parser.add_argument("--seed", type=int, default=0, help="the chaos proxy's random seed")
    parser.add_argument("--results-dir", type=Path, default=Path("results"))


def config_from_args(args: argparse.Namespace) -> SuiteConfig:
    config = QUICK if args.quick else FULL
    config = replace(
        config,
        strategies=tuple(args.strategies or sorted(STRATEGIES)),
        faults=tuple(args.faults or FAULT_NAMES),
        seed=args.seed,
    )
    if args.patients:
        config = replace(config, crowd=replace(config.crowd, patients=args.patients))
    overrides = {"strikes": args.strikes, "workers": args.workers, "drop_rate": args.drop_rate}
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    command = "slotrush faults " + " ".join(sys.argv[2:])
    return asyncio.run(_main(config, args.results_dir, command.strip()))


async def _main(config: SuiteConfig, results_dir: Path, command: str) -> int:
    with embedded_services() as services:
        machine = await asyncio.to_thread(
            describe_machine, services.redis.url, services.postgres.url
        )
        results = await run_suite(config, services, services.workdir)
    print(markdown_table(results))
    json_path, md_path = write_report(results, config, machine, results_dir, command)
    print(f"wrote {json_path} and {md_path}")
    return 0 if results and all(r.passed for r in results) else 1
