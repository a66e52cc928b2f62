"""The bench harness's own promises: one size scales every phase, a log gets a line per
phase, each strategy's targets are shown met or missed, and the committed micro-benchmark
record keeps statistics, not samples."""

from __future__ import annotations

import argparse
import datetime as dt
import io

from bench.config import BenchConfig
from bench.curves import _record
from bench.harness import add_arguments, config_from
from bench.memory import MemoryRun
from bench.microsummary import summarise
from bench.progress import run_progress
from bench.summary import targets_cell


def config(*argv: str) -> BenchConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from(parser.parse_args(list(argv)))


def test_size_scales_every_phase_and_users_only_the_crowd() -> None:
    full, tenth = config(), config("--size", "0.1")
    assert (full.throughput_requests, full.booking_requests, full.users) == (30_000, 10_000, 10_000)
    assert (tenth.throughput_requests, tenth.booking_requests, tenth.users) == (3_000, 1_000, 1_000)
    small_crowd = config("--users", "500")
    assert small_crowd.users == 500
    assert small_crowd.throughput_requests == full.throughput_requests
    assert config("--quick").throughput_requests == tenth.throughput_requests


def test_growth_scenarios_default_to_redis_lua() -> None:
    assert config("--scenario", "memory").strategies == ["redis-lua"]
    assert len(config().strategies) > 1


def test_without_a_terminal_each_phase_is_one_line() -> None:
    out = io.StringIO()
    with run_progress(3, out) as progress:
        steps = progress.steps("redis-lua", 3)
        for phase in ("ceiling", "sold_out"):
            steps.advance(phase)
            steps.progress(5, 10)
        steps.finish()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split("] ")[1] for line in lines] == [
        "redis-lua: ceiling",
        "redis-lua: sold_out",
        "redis-lua: done",
    ]


def test_targets_show_met_and_missed_beside_the_figures() -> None:
    found = [
        {"target": "sold-out throughput / ceiling", "strategy": "a", "value": 0.93,
         "threshold": 0.9, "met": True},
        {"target": "booking throughput / ceiling", "strategy": "a", "value": 0.41,
         "threshold": 0.6, "met": False},
        {"target": "sold-out throughput / ceiling", "strategy": "b", "value": 0.5,
         "threshold": 0.9, "met": False},
    ]  # fmt: skip
    assert targets_cell("a", found) == "sold-out 0.93 met, bookings 0.41 MISSED (0.60)"


def test_micro_benchmark_summary_drops_the_samples_alone() -> None:
    raw = {
        "machine_info": {"node": "vm"},
        "commit_info": {"id": "abc"},
        "benchmarks": [{"name": "x", "stats": {"mean": 1.0, "rounds": 3, "data": [1, 1, 1]}}],
    }
    summary = summarise(raw)
    assert summary["benchmarks"][0]["stats"] == {"mean": 1.0, "rounds": 3}
    assert summary["machine_info"] == raw["machine_info"]
    assert raw["benchmarks"][0]["stats"]["data"] == [1, 1, 1]


def test_memory_projects_each_worker_from_the_second_half() -> None:
    run = MemoryRun("redis-lua", 100_000)
    for k in range(11):
        # 20 MiB of warm-up in the first round, then 1 MiB per 100,000 patients.
        rss = 60.0 if k == 0 else 80.0 + k / 10
        run.samples.append({"patients": 10_000 * k, "booked": 0, "rss_mib": {"worker-1": rss}})
    assert round(run.slope("worker-1") or 0, 6) == 1.0
    assert round(run.projected("worker-1") or 0, 6) == 81.0 + 9.0
    assert run.ok


def test_a_memory_run_too_short_for_a_slope_projects_nothing() -> None:
    run = MemoryRun("redis-lua", 10_000)
    for k in range(3):
        run.samples.append({"patients": 5_000 * k, "booked": 0, "rss_mib": {"worker-1": 70.0}})
    record = _record(
        config("--scenario", "memory"), {"host": "vm"}, dt.datetime.now(), [run.to_dict()]
    )
    assert record["verdict"] == "10,000 patients; too few rounds to project (allowance 100): FAIL"
