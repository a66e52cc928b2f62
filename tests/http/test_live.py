"""The staff console's live stream: a hospital's sessions and holds as Server-Sent Events,
the same pages the polls answer, sent again only when they change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from core.tokens import issue_token
from tests.http.conftest import SECRET, Client, admin_token, bearer, schedule_in, unique

DAY = "2031-05-04"


async def events(api: Client, path: str, token: str) -> AsyncIterator[tuple[str, Any]]:
    """(event name, its JSON data) of the stream at `path`, until it ends."""
    async with api.session.get(api.url + path, headers=bearer(token)) as answer:
        assert answer.status == 200, await answer.text()
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        name = None
        async for raw in answer.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield name or "message", orjson.loads(line.removeprefix("data: "))
                name = None


def live_path(hospital: str, seconds: int) -> str:
    return f"/v1/admin/hospitals/{hospital}/live?from={DAY}&to={DAY}&seconds={seconds}"


async def test_the_stream_sends_the_pages_the_polls_answer_then_each_change(
    api: Client,
) -> None:
    hospital = unique("h")
    schedule, _ = await api.create_schedules(
        schedule_in(hospital_id=hospital, visit_date=DAY, capacity=3),
        schedule_in(visit_date=DAY),  # another hospital's, never streamed
    )
    staff = issue_token(SECRET, subject="staff", hospital_id=hospital)
    polled = await api.call(
        "GET", f"/v1/schedules?hospital_id={hospital}&from={DAY}&to={DAY}&limit=500", token=staff
    )
    seen: list[tuple[str, Any]] = []
    async for name, data in events(api, live_path(hospital, 30), staff):
        seen.append((name, data))
        if len(seen) == 2:
            assert dict(seen) == {
                "schedules": polled.json,
                "holds": {"bookings": [], "next_cursor": None},
            }
            assert (await api.book(schedule["id"], unique("p"))).status == 201
        elif len(seen) > 2:
            # Nothing is sent again until it changes: the next event is the booking.
            assert name == "schedules"
            assert [s["remaining"] for s in data["schedules"]] == [2]
            break
    assert len(seen) == 3


async def test_the_stream_ends_when_its_time_is_up(api: Client) -> None:
    hospital = unique("h")
    staff = issue_token(SECRET, subject="staff", hospital_id=hospital)
    names = [name async for name, _ in events(api, live_path(hospital, 2), staff)]
    # Nothing changes meanwhile: each page once, then the end.
    assert sorted(names[:2]) == ["holds", "schedules"]
    assert names[2:] == ["end"]


async def test_a_bad_span_is_refused_before_the_stream_starts(api: Client) -> None:
    for query in (
        "from=2031-05-04",
        "from=x&to=2031-05-04",
        "from=2031-05-04&to=2031-05-04&seconds=0",
    ):
        answer = await api.call("GET", f"/v1/admin/hospitals/h1/live?{query}", token=admin_token())
        answer.problem(400, "invalid_request")
