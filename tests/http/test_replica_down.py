"""A server told to read browsing from a replica that does not answer serves everything from
the primary: it starts, browses and books (core/replica.py)."""

from __future__ import annotations

import aiohttp

from bench.child_server import free_port
from tests.http.conftest import Client, ServeFn, patient_token, unique


async def test_a_server_whose_replica_is_down_serves_from_the_primary(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    served = await serve("--strategy", "pg-pessimistic", env={"DATABASE_REPLICA_URL": nowhere})
    api = Client(session, served.url)
    hospital = unique("h")
    schedule = await api.create_schedule(hospital_id=hospital)

    assert (await api.call("GET", "/v1/hospitals")).status == 200
    departments = await api.call("GET", f"/v1/hospitals/{hospital}/departments")
    assert [d["id"] for d in departments.json["departments"]] == [schedule["department_id"]]
    listing = await api.call(
        "GET", f"/v1/schedules?hospital_id={hospital}", token=patient_token(unique("p"))
    )
    assert [s["id"] for s in listing.json["schedules"]] == [schedule["id"]]
    assert (await api.book(schedule["id"], unique("p"))).status == 201
