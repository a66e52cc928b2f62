"""The lifecycle's verdict of a run: invariants 8-10 of API.md 1.1 and the money totals, read
from the ledger itself.

Money and settlement are the server's own business (a client never sees a refund happen or a
day-end count), so this check is SQL-backed: the Locust scenarios at test stop, the bench and
the fault suite all call `check_lifecycle` with the run's database and hospital.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from core.queries import query
from loadtest.client.invariants import check_report

# Invariant 9's slack: a lapsed hold frees its number within its expiry plus 5 seconds.
LAPSE_SLACK_SECONDS = 5.0
# Counts that break an invariant; the totals describe the run.
VIOLATIONS = ("money_violations", "lapse_violations", "settlement_violations", "money_errors")


@dataclass
class MoneyTotals:
    """Cents: charged - refunded - owed must equal the fees of bookings that keep them."""

    charged: int = 0
    refunded: int = 0
    owed: int = 0
    kept_fees: int = 0
    charges: int = 0
    refunds: int = 0

    @property
    def error_cents(self) -> int:
        return self.charged - self.refunded - self.owed - self.kept_fees


@dataclass
class LifecycleVerdict:
    money_violations: int = 0
    lapse_violations: int = 0
    settlement_violations: int = 0
    # 1 when the totals do not balance (their difference is in the details).
    money_errors: int = 0
    totals: MoneyTotals = field(default_factory=MoneyTotals)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(getattr(self, name) for name in VIOLATIONS)

    def summary(self) -> str:
        counts = ", ".join(f"{name}={getattr(self, name)}" for name in VIOLATIONS)
        t = self.totals
        money = (
            f"charged={t.charged} refunded={t.refunded} owed={t.owed} kept_fees={t.kept_fees} "
            f"(charges={t.charges} refunds={t.refunds})"
        )
        return f"{'PASS' if self.ok else 'FAIL'}: {counts}; {money}"

    def report(self) -> str:
        return check_report("lifecycle", self.summary(), self.details)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "money_error_cents": self.totals.error_cents}


async def check_lifecycle(
    conn: asyncpg.Connection | asyncpg.Pool,
    hospital_id: str | None = None,
    *,
    lapse_slack: float = LAPSE_SLACK_SECONDS,
) -> LifecycleVerdict:
    """Invariants 8-10 and the money totals of one hospital (every hospital: None)."""
    verdict = LifecycleVerdict()
    for row in await conn.fetch(query("money_violations"), hospital_id):
        verdict.money_violations += 1
        verdict.details.append(
            f"money of booking {row['hospital_id']}/{row['id']} {row['status']}: fee "
            f"{row['fee_cents']}, charged {row['charged']}, refunded {row['refunded']}, "
            f"refund owed {row['refund_owed']}, payment {row['payment_status']}"
        )
    for row in await conn.fetch(query("lapse_violations"), hospital_id, lapse_slack):
        verdict.lapse_violations += 1
        verdict.details.append(
            f"hold {row['hospital_id']}/{row['id']} {row['status']}: expires "
            f"{row['hold_expires_at']}, expired {row['expired_at']}"
        )
    for row in await conn.fetch(query("settlement_violations"), hospital_id):
        verdict.settlement_violations += 1
        verdict.details.append(f"{row['hospital_id']}: {row['problem']}")
    totals = await conn.fetchrow(query("money_totals"), hospital_id)
    verdict.totals = MoneyTotals(**{k: int(v) for k, v in dict(totals or {}).items()})
    if verdict.totals.error_cents:
        verdict.money_errors = 1
        verdict.details.append(f"the money totals are off by {verdict.totals.error_cents} cents")
    return verdict


def check_lifecycle_at(database_url: str, hospital_id: str | None = None) -> LifecycleVerdict:
    """The same from blocking code (Locust's test stop): one connection, opened and closed."""

    async def run() -> LifecycleVerdict:
        conn = await asyncpg.connect(database_url)
        try:
            return await check_lifecycle(conn, hospital_id)
        finally:
            await conn.close()

    return asyncio.run(run())
