"""`slotrush bench --scenario scale`: does a booking cost the same when the work grows?

Two axes, one point each, every request a new patient with a new token and a number for
each (capacity to spare, so every answer is a booking):
- crowd size: a flash crowd of 1,000 to 100,000 patients (`--size` scales them) arriving
  within one second on 10 schedules;
- open schedules: the crowd (`--users`) spread over 1 to 10,000 schedules opening at once,
  10 per hospital (10,000 is a region's 7 a.m.: 1,000 hospitals x 10 schedules), each
  schedule met for the first time by the crowd, so loading it is part of the cost.

Per point: bookings per second (first arrival to last answer), p99 from arrival (with the
whole crowd arriving within a second this is how long the last patients waited, so it
grows with the crowd by nature), and CPU per booking of the server, Redis and PostgreSQL
together: the figure that must stay flat.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any

from bench import loadgen, phases
from bench.config import BenchConfig
from bench.phases import Encoder
from bench.progress import Steps
from bench.stack import CpuMeter, ServerProcess
from loadtest.client.seed import AdminClient, SchedulePlan, new_run_id, opening_in

CROWD_SCHEDULES = 10
SCHEDULES_PER_HOSPITAL = 10
# The parties whose CPU a booking costs; the generator and the rest of the machine are not.
SERVICE = ("server", "redis", "postgres")


@dataclass(frozen=True)
class ScalePoint:
    axis: str  # "crowd" or "schedules"
    size: int  # patients or open schedules
    patients: int
    schedules: int
    booked: int
    answered: int
    seconds: float
    p99_ms: float
    cpu_seconds: dict[str, float]
    codes: dict[str, int]

    @property
    def bookings_per_second(self) -> float:
        return self.booked / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_booking(self) -> float:
        service = sum(self.cpu_seconds.get(p, 0.0) for p in SERVICE)
        return 1e6 * service / self.booked if self.booked else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "size": self.size,
            "patients": self.patients,
            "schedules": self.schedules,
            "booked": self.booked,
            "answered": self.answered,
            "seconds": self.seconds,
            "bookings_per_second": self.bookings_per_second,
            "p99_ms": self.p99_ms,
            "cpu_us_per_booking": self.cpu_us_per_booking,
            "cpu_seconds": self.cpu_seconds,
            "codes": self.codes,
        }


def measure_scale(
    config: BenchConfig, server: ServerProcess, secret: str, meter: CpuMeter, steps: Steps
) -> list[ScalePoint]:
    points = []
    for crowd in config.scale_crowds:
        steps.advance(f"crowd of {crowd:,}")
        points.append(_point(config, server, secret, meter, "crowd", crowd, CROWD_SCHEDULES))
    for schedules in config.scale_schedules:
        steps.advance(f"{schedules:,} open schedules")
        points.append(_point(config, server, secret, meter, "schedules", config.users, schedules))
    return points


def _point(
    config: BenchConfig,
    server: ServerProcess,
    secret: str,
    meter: CpuMeter,
    axis: str,
    patients: int,
    schedules: int,
) -> ScalePoint:
    admin = AdminClient(server.url, secret)
    # Patients pick schedules at random: three times the even share, so none runs out.
    capacity = -(-3 * patients // schedules) + 5
    opens_at = opening_in(2.0)
    plan = SchedulePlan(
        new_run_id(),
        schedules,
        capacity,
        opens_at,
        label=f"scale-{axis}",
        hospitals=max(schedules // SCHEDULES_PER_HOSPITAL, 1),
    )
    ids = [s.id for s in admin.create_schedules(plan)]
    encoder = Encoder("127.0.0.1", server.port, secret)
    name = f"{axis}{patients}x{schedules}"
    workload = phases.crowd(encoder, name, ids, patients, loadgen.spread(patients, 1.0))
    time.sleep(max((opens_at - dt.datetime.now(dt.UTC)).total_seconds(), 0.0))
    before = meter.sample()
    shot = loadgen.run(
        ("127.0.0.1", server.port),
        workload.requests,
        workload.arrivals,
        connections=config.connections,
        max_seconds=config.max_phase_seconds,
    )
    summary = phases.summarise(name, shot)
    return ScalePoint(
        axis=axis,
        size=patients if axis == "crowd" else schedules,
        patients=patients,
        schedules=schedules,
        booked=summary.codes.get("201 booked", 0),
        answered=summary.answered,
        seconds=summary.elapsed,
        p99_ms=summary.latency_ms["p99"],
        cpu_seconds=CpuMeter.delta(before, meter.sample()),
        codes=summary.codes,
    )


def bend(points: list[ScalePoint], axis: str) -> float | None:
    """CPU per booking at the axis's largest point over its smallest: 1.0 is flat."""
    mine = sorted((p for p in points if p.axis == axis), key=lambda p: p.size)
    if len(mine) < 2 or not mine[0].cpu_us_per_booking:
        return None
    return mine[-1].cpu_us_per_booking / mine[0].cpu_us_per_booking


def describe(strategy: str, points: list[ScalePoint]) -> str:
    lines = [f"{strategy}:"]
    for p in points:
        label = f"{p.patients:,} patients" if p.axis == "crowd" else f"{p.schedules:,} schedules"
        lines.append(
            f"  {p.axis:9} {label:>18}: {p.booked:,}/{p.patients:,} booked, "
            f"{p.bookings_per_second:,.0f}/s, p99 {p.p99_ms:,.0f} ms, "
            f"{p.cpu_us_per_booking:,.0f} µs CPU per booking (server, Redis, PostgreSQL); "
            + ", ".join(f"{code}: {n:,}" for code, n in p.codes.items())
        )
    for axis in ("crowd", "schedules"):
        ratio = bend(points, axis)
        if ratio is not None:
            lines.append(f"  CPU per booking, largest {axis} point / smallest: {ratio:.2f}")
    return "\n".join(lines)
