"""A smoke run of every registered strategy through HTTP (their contract suite is elsewhere),
and a strategy from outside the registry served by module:Class."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from strategies import STRATEGIES
from tests.http.conftest import Client, ServeFn, admin_token, patient_token, unique


@pytest.mark.parametrize("name", sorted(STRATEGIES))
async def test_each_strategy_books_sells_out_and_reopens(
    serve: ServeFn, session: aiohttp.ClientSession, name: str
) -> None:
    served = await serve("--strategy", name)
    api = Client(session, served.url)
    assert (await api.call("GET", "/healthz")).json == {"status": "ok", "strategy": name}
    schedule = await api.create_schedule(capacity=2)
    patients = [unique("p") for _ in range(3)]
    answers = await asyncio.gather(*(api.book(schedule["id"], p) for p in patients))
    assert sorted(a.status for a in answers) == [201, 201, 409]
    (loser,) = [a for a in answers if a.status == 409]
    loser.problem(409, "sold_out")
    winners = [a.json["booking"] for a in answers if a.status == 201]
    assert sorted(b["number"] for b in winners) == [1, 2]

    first = winners[0]
    cancel = await api.call(
        "POST", f"/v1/bookings/{first['id']}/cancel", token=patient_token(first["patient_id"])
    )
    assert cancel.status == 200
    latecomer = patients[answers.index(loser)]
    again = await api.book(schedule["id"], latecomer)
    assert again.status == 201 and again.json["booking"]["number"] == first["number"]

    audit = (await api.call("GET", "/v1/admin/audit", token=admin_token())).json
    assert audit["oversold"] == audit["duplicate_numbers"] == audit["duplicate_patients"] == 0
    (mine,) = [s for s in audit["schedules"] if s["id"] == schedule["id"]]
    assert (mine["booked"], mine["remaining"]) == (2, 0)


async def test_a_strategy_outside_the_registry_is_served_by_module_and_class(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    served = await serve("--strategy", "tests.racy_strategy:RacyStrategy")
    answer = await Client(session, served.url).call("GET", "/healthz")
    assert answer.json == {"status": "ok", "strategy": "racy"}
