"""`slotrush his-sync FILE --hospital H`: send a HIS schedule feed to a running server's
POST /v1/admin/hospitals/{H}/his-sync, over HTTP like any integrator, and print its answer.

Over HTTP rather than against DATABASE_URL: the server's strategy then learns what changed
at once (a Redis gate's inventory), its roles apply (a hospital administrator's token syncs
its own hospital only), and a cron job needs a URL and a token, not the ledger's password.
Exit status: 0 applied (or dry-run) cleanly, 1 when rows were in conflict or in error, 2
when the server refused the request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

TOKEN_ENV = "SLOTRUSH_TOKEN"
# A feed of 10,000 rows takes its time on a busy server (SLOTRUSH_ADMIN_REQUEST_TIMEOUT).
_TIMEOUT_SECONDS = 120


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", type=Path, help="the feed: *.csv, else JSON")
    parser.add_argument("--hospital", required=True, metavar="H", help="the hospital's id")
    parser.add_argument("--dry-run", action="store_true", help="answer the diff, change nothing")
    parser.add_argument(
        "--url",
        default=os.environ.get("SLOTRUSH_URL", "http://127.0.0.1:8080"),
        help="the server (default: $SLOTRUSH_URL or %(default)s)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"an admin's or the hospital's administrator's token (default: ${TOKEN_ENV}; "
        "without either, a platform admin token signed with SLOTRUSH_SECRET)",
    )


def run(args: argparse.Namespace, token: str) -> int:
    body = args.file.read_bytes()
    content_type = "text/csv" if args.file.suffix.lower() == ".csv" else "application/json"
    hospital = urllib.parse.quote(args.hospital, safe="")
    query = "?dry_run=true" if args.dry_run else ""
    request = urllib.request.Request(
        f"{args.url.rstrip('/')}/v1/admin/hospitals/{hospital}/his-sync{query}",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as answer:
            report: dict[str, Any] = json.load(answer)
    except urllib.error.HTTPError as refused:
        print(refused.read().decode(errors="replace"), file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 1 if report["conflicts"] or report["errors"] else 0
