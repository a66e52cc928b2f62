"""`slotrush bench --scenario lifecycle` at a tiny size, end to end: its sandbox provider, its
server on a database whose holds lapse in seconds, the crowd, the settlement, the check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.embedded import ServiceUrls

REPO = Path(__file__).resolve().parent.parent


def test_a_tiny_lifecycle_bench_measures_reuse_and_settlement(
    service_urls: ServiceUrls, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-c", "from server.cli import main; main()"),
            *("bench", "--scenario", "lifecycle", "--size", "0.001", "--workers", "1"),
            *("--results", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=REPO,
        env={
            **os.environ,
            "REDIS_URL": service_urls.redis_url,
            "DATABASE_URL": service_urls.database_url,
        },
        check=False,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (path,) = tmp_path.glob("*-lifecycle.json")
    measured = json.loads(path.read_text())["measured"]
    crowd, reuse, settlement = measured["crowd"], measured["reuse"], measured["settlement"]
    # 10 numbers (the least), 8 paid, 2 abandoned; every lapsed hold (those 2, and a payer's
    # whose notice came after its 3 s) booked again by the second wave.
    assert (crowd["held"], crowd["paid"], crowd["abandoned"]) == (10, 8, 2)
    assert reuse["lapsed"] >= 2 and reuse["never"] == 0
    assert crowd["rebooked"] == reuse["lapsed"]
    assert 0 <= reuse["max_s"] <= reuse["limit_s"]
    assert settlement["no_shows"] == settlement["bookings"] == 100
    assert measured["lifecycle"]["ok"], measured["lifecycle"]["details"]
    # Every payment was charged: the 8 of the first wave (a late one refunded) and the rebooked.
    assert measured["lifecycle"]["totals"]["charges"] == 8 + crowd["rebooked"]
    assert (tmp_path / path.name.replace(".json", ".md")).exists()
