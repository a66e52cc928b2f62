"""`make export-bench`: a hospital's CSV export of 1,000,000 bookings, with the server's
resident memory sampled throughout, to show it stays flat however many rows go out.

Seeds one hospital in a fresh database (schedules through the ledger's code, bookings in one
statement), starts `slotrush serve`, streams `GET /v1/admin/hospitals/{h}/bookings` with
`Accept: text/csv` through a client that reads and drops 64 KiB at a time, and samples the
RSS of the server's processes every 50 ms. Writes results/export-memory-<date>-<host>.json
and .png, and exits 1 if the server grew by more than the allowance or a row went missing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt
import psutil
from matplotlib.ticker import FuncFormatter

from bench.embedded import running_services
from bench.report import update_index, write_json
from bench.stack import ServerProcess, describe_machine, fresh_stack
from core.db import create_pool, migrate
from core.domain import Period, ScheduleIn
from core.ledger import Ledger
from core.queries import parse
from core.records import EXPORT_BATCH_ROWS
from loadtest.client.tokens import admin_token, new_secret

HOSPITAL: Final = "export-bench"
CAPACITY: Final = 1000
# How much the server may grow while streaming, whatever the row count: a few batches of
# rows and socket buffers, far below the size of the file (about 150 MB per million rows).
ALLOWANCE_MIB: Final = 32.0
SAMPLE_SECONDS: Final = 0.05
READ_BYTES: Final = 64 * 1024
MIB: Final = 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export_memory", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="default: %(default)s")
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    with (
        running_services(os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")) as urls,
        fresh_stack(urls, "export", secret := new_secret()) as env,
        tempfile.TemporaryDirectory(prefix="slotrush-export-") as workdir,
    ):
        database = env["DATABASE_URL"]
        print(f"seeding {args.rows:,} bookings ...", flush=True)
        seeded = asyncio.run(_seed(database, args.rows))
        server = ServerProcess("pg-pessimistic", 1, env, Path(workdir) / "serve.log")
        server.start(secret)
        try:
            print("streaming the export ...", flush=True)
            measured = _measure(server, admin_token(secret))
        finally:
            server.stop()
        machine = describe_machine(urls.redis_url, database)
    record = _record(args.rows, seeded, measured, machine, started)
    paths = _write(args.results, record, started, machine["host"])
    print(record["verdict"])
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0 if record["ok"] else 1


async def _seed(database_url: str, rows: int) -> float:
    """Seconds it took to write `rows` bookings of HOSPITAL (whole schedules of CAPACITY)."""
    began = time.perf_counter()
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        await migrate(pool)
        first = dt.date(2031, 1, 1)
        schedules = [
            ScheduleIn(
                hospital_id=HOSPITAL,
                department_id=f"dept-{k % 8}",
                doctor_id=f"dr-{k % 50}",
                visit_date=first + dt.timedelta(days=k // 50),
                period=Period.AM,
                capacity=min(CAPACITY, rows - k * CAPACITY),
            )
            for k in range(-(-rows // CAPACITY))
        ]
        await Ledger(pool).create_schedules(schedules, dt.datetime.now(dt.UTC))
        sql = parse(files("bench").joinpath("sql", "export.sql").read_text())["fill_hospital"]
        await pool.execute(sql, HOSPITAL, timeout=3600)
    finally:
        await pool.close()
    return time.perf_counter() - began


class _RssSampler(threading.Thread):
    """The summed RSS of a process tree every SAMPLE_SECONDS, beside the rows read so far."""

    def __init__(self, processes: list[psutil.Process]) -> None:
        super().__init__(daemon=True)
        self.processes = processes
        self.rows = 0
        self.samples: list[tuple[float, int, float]] = []
        self.stopped = threading.Event()
        self.began = time.perf_counter()

    def rss_mib(self) -> float:
        return sum(p.memory_info().rss for p in self.processes) / MIB

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self.samples.append((time.perf_counter() - self.began, self.rows, self.rss_mib()))


def _measure(server: ServerProcess, token: str) -> dict[str, Any]:
    url = urllib.parse.urlsplit(server.url)
    sampler = _RssSampler(server.processes())
    before = sampler.rss_mib()
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=600)
    sampler.start()
    began = time.perf_counter()
    conn.request(
        "GET",
        f"/v1/admin/hospitals/{HOSPITAL}/bookings",
        headers={"Authorization": f"Bearer {token}", "Accept": "text/csv"},
    )
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"the export answered {response.status}: {response.read()[:300]!r}")
    lines = received = 0
    while chunk := response.read(READ_BYTES):
        received += len(chunk)
        # No field of a record holds a line break, so each one ends a row (a CRLF may
        # straddle two reads).
        lines += chunk.count(b"\n")
        sampler.rows = max(lines - 1, 0)
    seconds = time.perf_counter() - began
    sampler.stopped.set()
    sampler.join()
    conn.close()
    return {
        "rows": max(lines - 1, 0),
        "bytes": received,
        "seconds": seconds,
        "rss_before_mib": before,
        "rss_after_mib": sampler.rss_mib(),
        "samples": sampler.samples,
    }


def _record(
    rows: int,
    seed_seconds: float,
    measured: dict[str, Any],
    machine: dict[str, Any],
    started: dt.datetime,
) -> dict[str, Any]:
    samples = measured.pop("samples")
    peak = max([s[2] for s in samples] + [measured["rss_before_mib"]])
    growth = peak - measured["rss_before_mib"]
    complete = measured["rows"] == rows
    ok = complete and growth <= ALLOWANCE_MIB
    stride = max(len(samples) // 300, 1)
    return {
        "kind": "CSV export memory",
        "verdict": (
            f"{measured['rows']:,} rows ({measured['bytes'] / MIB:,.0f} MiB) in "
            f"{measured['seconds']:.1f} s; server RSS {measured['rss_before_mib']:.0f} MiB "
            f"before, peak +{growth:.1f} MiB (allowance {ALLOWANCE_MIB:.0f}): "
            + ("PASS" if ok else "FAIL")
        ),
        "ok": ok,
        "started": started.isoformat(),
        "settings": {
            "rows": rows,
            "export_batch_rows": EXPORT_BATCH_ROWS,
            "strategy": "pg-pessimistic",
            "workers": 1,
            "client_read_bytes": READ_BYTES,
            "sample_seconds": SAMPLE_SECONDS,
            "allowance_mib": ALLOWANCE_MIB,
        },
        "seed_seconds": round(seed_seconds, 1),
        **{k: round(v, 2) if isinstance(v, float) else v for k, v in measured.items()},
        "rows_per_second": round(measured["rows"] / measured["seconds"]),
        "rss_peak_mib": round(peak, 2),
        "rss_growth_mib": round(growth, 2),
        # (seconds since the request, rows received, server RSS MiB), thinned to ~300.
        "samples": [[round(t, 2), n, round(m, 2)] for t, n, m in samples[::stride]],
        "machine": machine,
    }


def _write(results: Path, record: dict[str, Any], started: dt.datetime, host: str) -> list[Path]:
    results.mkdir(parents=True, exist_ok=True)
    stem = f"export-memory-{started:%Y-%m-%d}-{host}"
    page, image = results / f"{stem}.json", results / f"{stem}.png"
    write_json(page, record)
    fig, axis = plt.subplots(figsize=(7.5, 4))
    allowed = record["rss_before_mib"] + ALLOWANCE_MIB
    axis.plot(
        [s[1] for s in record["samples"]],
        [s[2] for s in record["samples"]],
        color="#3b7dd8",
        label="server RSS",
    )
    axis.axhline(
        allowed, color="#d8703b", linestyle="--", label=f"before + {ALLOWANCE_MIB:.0f} MiB"
    )
    axis.set_xlabel("rows received by the client")
    axis.set_ylabel("MiB")
    axis.set_ylim(0, max(allowed, record["rss_peak_mib"]) * 1.15)
    axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    axis.set_title(f"CSV export of {record['rows']:,} rows: server memory", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(image, dpi=110)
    plt.close(fig)
    update_index(results)
    return [page, image]


if __name__ == "__main__":
    sys.exit(main())
