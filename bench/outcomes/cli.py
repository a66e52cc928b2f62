"""`slotrush report --hospital H [--from DATE] [--to DATE] [--url URL]`: the report of one
hospital, from a running server (`--url`, with `--token` or a token signed with
SLOTRUSH_SECRET) or else from the ledger at DATABASE_URL."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import urllib.error
from pathlib import Path

from bench.outcomes import document, source
from core.analytics import GroupBy
from core.db import create_pool
from core.domain import ID_PATTERN
from core.tokens import issue_token
from server.cli import CliError
from server.shapes.analytics import Analytics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Write a hospital's no-show and cancellation report (Markdown, PNG)."
    parser.add_argument("--hospital", required=True, help="the hospital's id")
    parser.add_argument("--from", dest="first", type=dt.date.fromisoformat, help="first visit date")
    parser.add_argument("--to", dest="last", type=dt.date.fromisoformat, help="last visit date")
    parser.add_argument("--url", help="a server to ask (default: the ledger at DATABASE_URL)")
    parser.add_argument(
        "--token", help="an admin token for --url (default: signed with SLOTRUSH_SECRET)"
    )
    parser.add_argument("--out", type=Path, default=Path("."), help="folder (default: %(default)s)")
    parser.add_argument("--name", help="file name stem (default: analytics-HOSPITAL)")


def run(args: argparse.Namespace) -> int:
    if not ID_PATTERN.fullmatch(args.hospital):
        raise CliError("--hospital must be 1..64 characters of [A-Za-z0-9._-]")
    first, last = args.first or dt.date.min, args.last or dt.date.max
    if args.url:
        results = _from_server(args.url, _token(args.token), args.hospital, first, last)
        where = args.url
    else:
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            raise CliError("give --url, or set DATABASE_URL to read the ledger")
        results = asyncio.run(fetch_ledger(database_url, args.hospital, first, last))
        where = "the ledger"
    paths = document.write(args.out, args.name or f"analytics-{args.hospital}", results, where)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _token(given: str | None) -> str:
    if given:
        return given
    secret = os.environ.get("SLOTRUSH_SECRET")
    if not secret:
        raise CliError("give --token, or set SLOTRUSH_SECRET to sign an admin token")
    return issue_token(secret, admin=True)


def _from_server(
    url: str, token: str, hospital: str, first: dt.date, last: dt.date
) -> dict[GroupBy, Analytics]:
    try:
        return {g: source.from_server(url, token, hospital, g, first, last) for g in GroupBy}
    except urllib.error.HTTPError as exc:
        raise CliError(f"{url} answered {exc.code}: {exc.read()[:300]!r}") from None
    except urllib.error.URLError as exc:
        raise CliError(f"{url} cannot be reached: {exc.reason}") from None


async def fetch_ledger(
    database_url: str, hospital: str, first: dt.date, last: dt.date
) -> dict[GroupBy, Analytics]:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        return {g: await source.from_ledger(pool, hospital, g, first, last) for g in GroupBy}
    finally:
        await pool.close()
