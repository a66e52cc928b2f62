"""`slotrush simulate`: generate a season, write it to the ledger at DATABASE_URL (else to a
throwaway embedded one), print what it holds; `--report-to DIR` also writes the first
hospital's report, with the generating rates marked, and a JSON record of the run."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
from collections import Counter
from pathlib import Path
from typing import Any

from bench.embedded import running_services
from bench.outcomes import document
from bench.outcomes.cli import fetch_ledger
from bench.outcomes.plots import Generating
from bench.report import update_index, write_json
from bench.season import rates
from bench.season.expected import TOLERANCE_SE, expected
from bench.season.generate import Season, SeasonPlan, generate
from bench.season.write import write
from bench.stack import describe_machine
from core.analytics import GroupBy
from core.db import create_pool, migrate
from server.shapes.analytics import Analytics

REPORT_NAME = "simulated-season"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Simulate a season of a region's hospitals into the ledger."
    defaults = SeasonPlan(first_day=dt.date.min)
    parser.add_argument(
        "--region", default=defaults.region, help="id prefix (default: %(default)s)"
    )
    parser.add_argument("--hospitals", type=int, default=defaults.hospitals)
    parser.add_argument(
        "--doctors",
        type=int,
        default=defaults.doctors_per_department,
        help="per department (default: %(default)s)",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=defaults.sessions_per_week,
        help="per doctor and week, 1..6 (default: %(default)s)",
    )
    parser.add_argument("--weeks", type=int, default=defaults.weeks)
    parser.add_argument(
        "--first-day",
        type=dt.date.fromisoformat,
        help="default: the Monday that ends the season last week",
    )
    parser.add_argument("--patients", type=int, default=defaults.patients)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--report-to", type=Path, help="write the first hospital's report here")


def plan_from(args: argparse.Namespace) -> SeasonPlan:
    this_monday = dt.date.today() - dt.timedelta(days=dt.date.today().weekday())
    return SeasonPlan(
        first_day=args.first_day or this_monday - dt.timedelta(weeks=args.weeks),
        weeks=args.weeks,
        hospitals=args.hospitals,
        doctors_per_department=args.doctors,
        sessions_per_week=args.sessions,
        patients=args.patients,
        seed=args.seed,
        region=args.region,
    )


def run(args: argparse.Namespace) -> int:
    plan = plan_from(args)
    season = generate(plan)
    database_url = os.environ.get("DATABASE_URL")
    if database_url is None:
        print("DATABASE_URL is not set: the season goes to a throwaway database, gone at exit")
    with running_services(os.environ.get("REDIS_URL"), database_url) as urls:
        asyncio.run(_write(urls.database_url, season))
        print(_summary(season))
        if args.report_to:
            paths = _report(args.report_to, season, urls.redis_url, urls.database_url)
            print("wrote " + ", ".join(str(p) for p in paths))
    return 0


async def _write(database_url: str, season: Season) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(pool)
        await write(pool, season)
    finally:
        await pool.close()


def _summary(season: Season) -> str:
    outcomes = Counter(b.status.value for b in season.bookings)
    plan = season.plan
    last = plan.first_day + dt.timedelta(weeks=plan.weeks, days=-1)
    return (
        f"{plan.hospitals} hospitals, {len(season.schedules):,} sessions from "
        f"{plan.first_day} to {last}, {len(season.patients):,} patients, "
        f"{len(season.bookings):,} bookings: "
        + ", ".join(f"{n:,} {status}" for status, n in sorted(outcomes.items()))
    )


def generating_rates(season: Season, hospital: str) -> dict[GroupBy, Generating]:
    return {
        g: {
            k: (e.no_show.rate, e.cancellation.rate)
            for k, e in expected(season, hospital, g).items()
        }
        for g in GroupBy
    }


def _report(out: Path, season: Season, redis_url: str, database_url: str) -> list[Path]:
    hospital = season.plan.hospital_ids[0]
    results = asyncio.run(fetch_ledger(database_url, hospital, dt.date.min, dt.date.max))
    paths = document.write(
        out, REPORT_NAME, results, "a simulated season", generating_rates(season, hospital)
    )
    record = _record(season, hospital, results, describe_machine(redis_url, database_url))
    write_json(out / f"{REPORT_NAME}.json", record)
    update_index(out)
    return [*paths, out / f"{REPORT_NAME}.json"]


def _record(
    season: Season, hospital: str, results: dict[GroupBy, Analytics], machine: dict[str, Any]
) -> dict[str, Any]:
    """The run, described: its plan, the generating table and, per group, the recovered
    rates beside the expected ones and whether each is within the tolerance."""
    checks = []
    for group_by, result in results.items():
        wanted = expected(season, hospital, group_by)
        for g in result.groups:
            e = wanted[g.group]
            for rate, observed, exp in (
                ("no_show", g.no_show_rate, e.no_show),
                ("cancellation", g.cancellation_rate, e.cancellation),
            ):
                checks.append(
                    {
                        "group_by": group_by.value,
                        "group": g.group,
                        "rate": rate,
                        "observed": observed,
                        "expected": exp.rate,
                        "tolerance": exp.tolerance,
                        "within": observed is not None and exp.admits(observed),
                    }
                )
    within = sum(c["within"] for c in checks)
    return {
        "kind": "simulated season",
        "page": f"{REPORT_NAME}.md",
        "verdict": f"{within}/{len(checks)} rates within {TOLERANCE_SE:g} SE",
        "plan": {k: str(v) for k, v in dataclasses.asdict(season.plan).items()},
        "hospital": hospital,
        "bookings": len(season.bookings),
        "rates": {
            "no_show_base": rates.NO_SHOW_BASE,
            "cancel_base": rates.CANCEL_BASE,
            "no_show_lead_factor": rates.NO_SHOW_LEAD_FACTOR,
            "cancel_lead_factor": rates.CANCEL_LEAD_FACTOR,
            "age_mix": rates.AGE_MIX,
            "lead_mix": rates.LEAD_MIX,
        },
        "checks": checks,
        "machine": machine,
    }
