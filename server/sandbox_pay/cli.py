"""`slotrush sandbox-pay`: the sandbox payment provider on its own port, until interrupted.
It prints `slotrush sandbox-pay: serving on http://HOST:PORT` once it listens."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from aiohttp import web

from core.settings import Settings
from server.sandbox_pay.app import create_app
from server.sandbox_pay.delivery import Faults


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument(
        "--port", type=int, default=8099, help="0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--webhook-url",
        help="where notices go: slotrush's POST /v1/payments/sandbox/webhook (also settable "
        "at run time: POST /control)",
    )
    parser.add_argument("--duplicate", action="store_true", help="send every notice twice")
    parser.add_argument("--delay", type=float, default=0.0, help="send notices this late (s)")
    parser.add_argument(
        "--reorder", action="store_true", help="send each notice after the next one"
    )
    parser.add_argument("--fail", action="store_true", help="answer every API call 503")
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="answer every API call this late (s)"
    )
    parser.add_argument(
        "--state",
        type=Path,
        help="a journal file: checkouts, refunds and undelivered notices survive a restart "
        "(default: kept in memory only)",
    )


def run(args: argparse.Namespace) -> int:
    # The secret its webhooks are signed with: the one slotrush verifies them with.
    secret = os.environ.get("SLOTRUSH_PAY_SECRET") or Settings.pay_secret
    faults = Faults(
        fail=args.fail,
        timeout=args.timeout,
        duplicate=args.duplicate,
        delay=args.delay,
        reorder=args.reorder,
        webhook_url=args.webhook_url,
    )
    asyncio.run(_serve(create_app(secret, faults, args.state), args.host, args.port))
    return 0


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"slotrush sandbox-pay: serving on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
