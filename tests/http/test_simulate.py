"""A simulated season, read back: the analytics endpoint must recover the rates the season was
drawn with, and `slotrush simulate` and `slotrush report` must write what they say.

The season is seeded, so the test is deterministic; its size is what makes the tolerance
sound. Given who booked what and how far ahead, each group's rate is a mean of independent
draws, so its expectation and standard error are known (bench.season.expected): each rate
must lie within 4 standard errors of it (by chance outside less than once in 15,000), and
the season is large enough (about 84,000 bookings, the smallest group over 3,500 visits due)
that 4 standard errors are under 3.5 percentage points for every group. Group sizes are
compared exactly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from bench.season.expected import expected
from bench.season.generate import SeasonPlan, generate
from bench.season.write import write
from core.analytics import GroupBy
from server import cli
from server.shapes.analytics import Analytics
from tests.http.conftest import SECRET, Client, ServeFn, admin_token

PLAN = SeasonPlan(
    first_day=dt.date(2025, 1, 6),
    weeks=26,
    hospitals=1,
    doctors_per_department=5,
    patients=20_000,
    without_profile=0.05,
    seed=11,
    region="t",
)
# The widest a tolerance may be for the comparison to say something.
MAX_TOLERANCE = 0.035


async def test_the_analytics_recover_the_rates_the_season_was_drawn_with(
    serve: ServeFn, test_database_url: str, session: aiohttp.ClientSession
) -> None:
    season = generate(PLAN)
    pool = await asyncpg.create_pool(test_database_url, min_size=1, max_size=2)
    try:
        await write(pool, season)
    finally:
        await pool.close()
    served = await serve()
    api = Client(session, served.url)
    (hospital,) = PLAN.hospital_ids
    checked = 0
    for group_by in GroupBy:
        path = f"/v1/admin/hospitals/{hospital}/analytics?group_by={group_by.value}"
        answer = await api.call("GET", path, token=admin_token())
        assert answer.status == 200, answer.body
        found = {g.group: g for g in answer.shaped(Analytics).groups}
        wanted = expected(season, hospital, group_by)
        assert set(found) == set(wanted), group_by
        for name, group in found.items():
            want = wanted[name]
            where = f"{group_by.value} {name}"
            assert (group.bookings, group.attended + group.no_shows) == (
                want.bookings,
                want.settled,
            ), where
            for observed, rate in (
                (group.no_show_rate, want.no_show),
                (group.cancellation_rate, want.cancellation),
            ):
                assert rate.tolerance <= MAX_TOLERANCE, f"{where}: too few to tell"
                assert observed is not None and rate.admits(observed), (where, observed, rate)
                checked += 1
    # Every group of every grouping was compared: 6 age bands, 8 departments, 6 weekdays, 6
    # lead times, two rates each.
    assert checked == 2 * (6 + 8 + 6 + 6)


def test_simulate_writes_a_season_and_its_report(
    test_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", test_database_url)
    status = cli.main(
        [
            "simulate",
            "--region",
            "cli",
            "--hospitals",
            "2",
            "--weeks",
            "2",
            "--patients",
            "2000",
            "--report-to",
            str(tmp_path),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "2 hospitals" in out and "bookings" in out
    record = json.loads((tmp_path / "simulated-season.json").read_text())
    assert record["hospital"] == "cli-h1" and record["bookings"] > 0
    assert all(check["within"] for check in record["checks"]), record["verdict"]
    page = (tmp_path / "simulated-season.md").read_text()
    for group_by in GroupBy:
        assert f"(simulated-season-{group_by.value}.png)" in page
        assert (tmp_path / f"simulated-season-{group_by.value}.png").stat().st_size > 10_000
    # Two weeks of one hospital: the rarest groups are too small to compare, and say so.
    assert "*small*" in page
    assert "simulated-season" in (tmp_path / "README.md").read_text()


async def test_report_reads_the_server_or_the_ledger_alike(
    serve: ServeFn, test_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    season = generate(
        SeasonPlan(first_day=dt.date(2025, 1, 6), weeks=1, hospitals=1, patients=2000, seed=3)
    )
    pool = await asyncpg.create_pool(test_database_url, min_size=1, max_size=2)
    try:
        await write(pool, season)
    finally:
        await pool.close()
    served = await serve()
    hospital = season.plan.hospital_ids[0]
    monkeypatch.setenv("SLOTRUSH_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", test_database_url)
    common = ["report", "--hospital", hospital, "--from", "2025-01-07", "--out", str(tmp_path)]
    # The command runs its own event loop: off this one.
    assert (
        await asyncio.to_thread(cli.main, [*common, "--url", served.url, "--name", "served"]) == 0
    )
    assert await asyncio.to_thread(cli.main, [*common, "--name", "ledger"]) == 0

    def tables(name: str) -> list[str]:
        lines = (tmp_path / f"{name}.md").read_text().splitlines()
        return [line for line in lines if line.startswith("|")]

    assert tables("served") == tables("ledger")
    assert "Visits from 2025-01-07 to the last" in (tmp_path / "served.md").read_text()
    assert len(tables("served")) > 4 * 3


def test_report_names_what_it_lacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SLOTRUSH_SECRET", raising=False)
    assert cli.main(["report", "--hospital", "h1"]) == 2
    assert "DATABASE_URL" in capsys.readouterr().err
    assert cli.main(["report", "--hospital", "h1", "--url", "http://127.0.0.1:9"]) == 2
    assert "SLOTRUSH_SECRET" in capsys.readouterr().err
    assert cli.main(["report", "--hospital", "a b"]) == 2
    assert "--hospital" in capsys.readouterr().err
