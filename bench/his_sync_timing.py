"""How long a HIS sync of a hospital's whole schedule takes: `python -m bench.his_sync_timing
[--rows N] [--strategy NAME]`. One feed of N sessions applied to an empty hospital (all
created), again (all unchanged), with every capacity grown by one (all updated, numbers
added in the ledger and, for a Redis gate, in its slots), as a dry run, and empty (all
suspended). Embedded Redis and PostgreSQL unless REDIS_URL and DATABASE_URL are set."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time
import uuid

from bench.embedded import running_services
from core.booking import BookingService
from core.his_sync import feed
from core.his_sync.service import HisSync
from core.hospitals import Department, Doctor, Hospital
from core.settings import Settings
from core.stores import open_stores
from strategies import STRATEGIES


def _feed(rows: int, capacity: int) -> list[feed.FeedRow | feed.RowError]:
    first = dt.date.today() + dt.timedelta(days=2)
    return feed.rows(
        (
            i + 1,
            {
                "external_id": f"S{i}",
                "department_id": "d1",
                "doctor_id": f"doc{i % 50}",
                "visit_date": (first + dt.timedelta(days=i // 150)).isoformat(),
                "period": ("am", "pm", "night")[i % 3],
                "capacity": capacity,
            },
        )
        for i in range(rows)
    )


async def _run(rows: int, strategy_name: str, redis_url: str, database_url: str) -> None:
    settings = Settings.from_env(redis_prefix=f"his-{uuid.uuid4().hex[:8]}:")
    async with open_stores(settings, redis_url=redis_url, database_url=database_url) as stores:
        strategy = STRATEGIES[strategy_name](stores)
        await strategy.start()
        service = BookingService(strategy, stores.ledger)
        hospital = f"his-{uuid.uuid4().hex[:8]}"
        await service.hospitals.put_hospital(Hospital(hospital, "timing"))
        await service.hospitals.put_department(Department(hospital, "d1", "d1"))
        for d in range(50):
            await service.hospitals.put_doctor(Doctor(hospital, f"doc{d}", "x", "d1"))
        his = HisSync(service)
        steps = [
            ("create", _feed(rows, 20), False),
            ("unchanged", _feed(rows, 20), False),
            ("grow +1", _feed(rows, 21), False),
            ("dry run", _feed(rows, 22), True),
            ("suspend all", [], False),
        ]
        print(f"{rows} rows, {strategy_name}")
        for label, rows_of_step, dry_run in steps:
            started = time.perf_counter()
            report = await his.sync(hospital, rows_of_step, dry_run=dry_run)
            took = time.perf_counter() - started
            print(
                f"  {label:12} {took:6.2f} s  created={report.created} updated={report.updated}"
                f" unchanged={report.unchanged} suspended={report.suspended}"
            )
        await strategy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--strategy", default="redis-lua", choices=sorted(STRATEGIES))
    args = parser.parse_args()
    with running_services(os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")) as urls:
        asyncio.run(_run(args.rows, args.strategy, urls.redis_url, urls.database_url))


if __name__ == "__main__":
    main()
