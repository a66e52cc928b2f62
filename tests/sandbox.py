"""The sandbox payment provider for tests: in this process on a free loopback port, or as
the `slotrush sandbox-pay` command; both are the real HTTP service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.sandbox import SandboxProcess
from core.payments import signing
from core.settings import Settings
from server.sandbox_pay.app import DELIVERER, FAULTS, LEDGER, create_app
from server.sandbox_pay.delivery import Delivery, Faults
from server.sandbox_pay.state import Ledger

SECRET = Settings.pay_secret
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Sandbox:
    url: str
    app: web.Application

    @property
    def faults(self) -> Faults:
        return self.app[FAULTS]

    @property
    def ledger(self) -> Ledger:
        return self.app[LEDGER]

    def deliveries(self) -> list[Delivery]:
        return self.app[DELIVERER].log

    def refunds_of(self, checkout_ref: str) -> int:
        return len(self.ledger.checkouts[checkout_ref].refunds)


@asynccontextmanager
async def running_sandbox() -> AsyncIterator[Sandbox]:
    app = create_app(SECRET)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Sandbox(f"http://127.0.0.1:{port}", app)
    finally:
        await runner.cleanup()


async def complete(session: aiohttp.ClientSession, url: str, ref: str, outcome: str) -> None:
    """The patient pays (or is declined) at the sandbox."""
    async with session.post(f"{url}/checkouts/{ref}/complete", json={"outcome": outcome}) as r:
        assert r.status == 200, await r.text()


def signed(event: dict[str, Any], *, at: float | None = None) -> tuple[bytes, str]:
    """A notice's body and its signature header, as the sandbox signs them."""
    body = orjson.dumps(event)
    return body, signing.sign(SECRET, body, int(time.time() if at is None else at))


@asynccontextmanager
async def sandbox_process(workdir: Path) -> AsyncIterator[str]:
    """`slotrush sandbox-pay` as its own process (bench.sandbox), its log and journal in
    `workdir`; its URL once it listens."""
    sandbox = SandboxProcess(workdir)
    await asyncio.to_thread(sandbox.start)
    try:
        yield sandbox.url
    finally:
        await asyncio.to_thread(sandbox.kill)
