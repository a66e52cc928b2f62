"""The ledger's side of a lease: one claim per lease decides whether its row is written or
its number given back.

The writer claims 'written' in the very statement that writes the row (insert_bookings in
ledger.sql); whoever gives a number back (the writer after an uncertain write, a reconciler)
claims 'abandoned' first. The claim's primary key makes the later claimant wait for the
first one's transaction and lose, so a write that commits late is never given back and a
number given back is never written, whatever the clocks of the server and PostgreSQL say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from core.domain import Booking
from core.ledger import booking_from_row
from core.queries import fetch_one
from core.queries import query as q

# (hospital id, lease id): the key of a lease's claim.
LeaseKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a claimed lease ended in the ledger."""

    abandoned: bool
    # The row written under it; None for an abandoned lease, or a written one whose row a
    # rule of the ledger refused.
    booking: Booking | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the ledger refused a lease's row, and so what of the take goes back."""

    # Someone else holds the number: Redis offered it wrongly, it stays out of Redis.
    number_held: bool
    # The patient holds a booking there already: the take's counts now describe that one.
    patient_active: bool
    key_used: bool
    blacklisted: bool
    # The hospital suspended the schedule after Redis offered the number.
    suspended: bool
    # A HIS sync took the number off the schedule after Redis offered it.
    number_gone: bool = False


async def abandon(pg: asyncpg.Pool, leases: Sequence[LeaseKey]) -> set[str]:
    """Claim the leases for their give-back; the ids of those this call won. Claims are made
    in lease id order, as a batch of writes makes them, so the two never deadlock."""
    rows = await pg.fetch(q("redis_abandon_leases"), *_columns(sorted(leases, key=_lease_id)))
    return {row["lease_id"] for row in rows}


async def outcomes(pg: asyncpg.Pool, leases: Sequence[LeaseKey]) -> dict[str, Outcome]:
    """How each claimed lease ended; leases without a claim are left out."""
    rows = await pg.fetch(q("redis_lease_outcomes"), *_columns(leases))
    return {
        row["lease_id"]: Outcome(
            row["outcome"] == "abandoned",
            booking_from_row(row) if row["id"] is not None else None,
        )
        for row in rows
    }


async def refusal(
    pg: asyncpg.Pool,
    *,
    hospital_id: str,
    schedule_id: int,
    number: int,
    patient_id: str,
    idempotency_key: str | None = None,
) -> Refusal:
    row = await fetch_one(
        pg, "redis_refusal_cause", schedule_id, number, patient_id, idempotency_key, hospital_id
    )
    return Refusal(
        number_held=row["number_held"],
        patient_active=row["patient_active"],
        key_used=row["key_used"],
        blacklisted=row["blacklisted"],
        suspended=row["suspended"],
        number_gone=row["number_gone"],
    )


async def prune(pg: asyncpg.Pool, older_than: float) -> None:
    """Forget claims made `older_than` seconds ago: their leases are long settled."""
    await pg.execute(q("redis_prune_claims"), older_than)


def _lease_id(key: LeaseKey) -> str:
    return key[1]


def _columns(leases: Sequence[LeaseKey]) -> tuple[list[str], list[str]]:
    return [hospital for hospital, _ in leases], [lease for _, lease in leases]
