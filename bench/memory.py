"""`slotrush bench --scenario memory`: does a worker's memory stay flat through a long run of
new patients?

A flash crowd is every request a new patient with a new token, and whatever a worker keeps
per patient, token or booking (a cache, a queue, a metric label) grows with the crowd until
it is bounded. The run books `--patients` new patients in rounds of `ROUND` over schedules
that never run out, flat out, and reads each worker's RSS after every round. It reports the
growth per 100,000 patients over the run's second half (after the caches have filled and
the allocator has warmed up) and projects each worker to 1,000,000 patients against the
100 MiB allowance.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import loadgen, phases
from bench.config import BenchConfig
from bench.ledger_size import ledger_footprint
from bench.phases import Encoder
from bench.progress import Steps
from bench.rss import rss_by_process
from bench.stack import ServerProcess
from loadtest.client.seed import AdminClient, SchedulePlan, new_run_id, opening_in

ROUND = 5_000
SCHEDULES = 100
NUMBERS_PER_CALL = 1_000_000
PROJECTED_PATIENTS = 1_000_000
ALLOWANCE_MIB = 100.0
PER = 100_000
# The run stops after this long whatever `--patients` asked, and says how far it got.
MAX_SECONDS = 900.0


@dataclass
class MemoryRun:
    strategy: str
    patients_asked: int
    samples: list[dict[str, Any]] = field(default_factory=list)
    ledger: dict[str, Any] | None = None
    stopped_early: bool = False
    # Answers by status and code over the whole run.
    codes: Counter[str] = field(default_factory=Counter)

    @property
    def patients(self) -> int:
        return self.samples[-1]["patients"] if self.samples else 0

    def workers(self) -> list[str]:
        names = self.samples[-1]["rss_mib"] if self.samples else {}
        return sorted(n for n in names if n.startswith("worker"))

    def slope(self, worker: str) -> float | None:
        """MiB per 100,000 patients over the second half of the run (a least-squares line)."""
        half = [s for s in self.samples if s["patients"] >= self.patients / 2]
        points = [(s["patients"], s["rss_mib"][worker]) for s in half if worker in s["rss_mib"]]
        if len(points) < 3:
            return None
        xs, ys = zip(*points, strict=True)
        return PER * statistics.linear_regression(xs, ys).slope

    def projected(self, worker: str) -> float | None:
        slope = self.slope(worker)
        if slope is None:
            return None
        last = self.samples[-1]["rss_mib"][worker]
        return float(last + max(slope, 0.0) * (PROJECTED_PATIENTS - self.patients) / PER)

    @property
    def ok(self) -> bool:
        projections = [self.projected(w) for w in self.workers()]
        return bool(projections) and all(p is not None and p <= ALLOWANCE_MIB for p in projections)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "patients_asked": self.patients_asked,
            "patients": self.patients,
            "stopped_early": self.stopped_early,
            "ok": self.ok,
            "workers": {
                w: {
                    "start_mib": self.samples[0]["rss_mib"].get(w),
                    "end_mib": self.samples[-1]["rss_mib"].get(w),
                    "max_mib": max(s["rss_mib"].get(w, math.nan) for s in self.samples),
                    "mib_per_100k_patients": self.slope(w),
                    "projected_mib_at_1m": self.projected(w),
                }
                for w in self.workers()
            },
            "ledger": self.ledger,
            "codes": dict(self.codes.most_common()),
            "samples": self.samples,
        }

    def describe(self) -> str:
        codes = ", ".join(f"{code}: {n:,}" for code, n in self.codes.most_common())
        lines = [f"{self.strategy}: {self.patients:,} new patients ({codes})"]
        for name, w in self.to_dict()["workers"].items():
            slope, projected = w["mib_per_100k_patients"], w["projected_mib_at_1m"]
            lines.append(
                f"  {name}: RSS {w['start_mib']:.0f} → {w['end_mib']:.0f} MiB "
                f"(max {w['max_mib']:.0f}); "
                + (
                    f"{slope:+.2f} MiB per 100k patients over the second half, "
                    f"{projected:.0f} MiB projected at 1,000,000 (allowance {ALLOWANCE_MIB:.0f})"
                    if slope is not None and projected is not None
                    else "too few rounds for a slope"
                )
            )
        if self.ledger and self.ledger["bookings_bytes_per_row"]:
            lines.append(
                f"  PostgreSQL: {self.ledger['booking_rows']:,} booking rows, "
                f"{self.ledger['bookings_bytes_per_row']:.0f} bytes each in their table "
                f"(indexes included), {self.ledger['database_bytes_per_row']:.0f} bytes "
                "each of the whole database"
            )
        return "\n".join(lines)


def measure_memory(
    config: BenchConfig, server: ServerProcess, secret: str, database: str, steps: Steps
) -> MemoryRun:
    run = MemoryRun(server.strategy, config.memory_patients)
    admin = AdminClient(server.url, secret)
    # Patients pick schedules at random: three times the even share, so none runs out. The
    # numbers are created at most NUMBERS_PER_CALL per admin request: the 3,000,000 of a
    # 1,000,000-patient run in one request were answered 503 busy.
    numbers = 3 * config.memory_patients
    calls = -(-numbers // NUMBERS_PER_CALL)
    per_schedule = -(-numbers // (SCHEDULES * calls)) + 10
    plans = [
        SchedulePlan(new_run_id(), SCHEDULES, per_schedule, opening_in(0), label="memory")
        for _ in range(calls)
    ]
    schedules = [s.id for plan in plans for s in admin.create_schedules(plan)]
    started = time.monotonic()
    run.samples.append(_sample(server, 0, 0, started))
    booked, round_number = 0, 0
    while run.patients < config.memory_patients:
        if time.monotonic() - started > MAX_SECONDS:
            run.stopped_early = True
            break
        count = min(ROUND, config.memory_patients - run.patients)
        steps.advance(f"patients {run.patients:,}-{run.patients + count:,}")
        # A new encoder each round: the generator must not keep a million tokens either.
        encoder = Encoder("127.0.0.1", server.port, secret)
        workload = phases.crowd(
            encoder, f"m{round_number}", schedules, count, loadgen.burst(count), seed=round_number
        )
        shot = loadgen.run(
            ("127.0.0.1", server.port),
            workload.requests,
            workload.arrivals,
            connections=config.connections,
            max_seconds=config.max_phase_seconds,
        )
        booked += sum(1 for status in shot.status if status == 201)
        run.codes.update(phases.summarise(workload.name, shot).codes)
        round_number += 1
        run.samples.append(_sample(server, run.patients + count, booked, started))
    run.ledger = ledger_footprint(database)
    return run


def _sample(server: ServerProcess, patients: int, booked: int, started: float) -> dict[str, Any]:
    return {
        "patients": patients,
        "booked": booked,
        "seconds": round(time.monotonic() - started, 2),
        "rss_mib": rss_by_process(server.processes()),
    }
