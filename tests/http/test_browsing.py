"""Public browsing and pages (API.md 1.1, Management): hospitals, departments and doctors
without a token; every list cursor-paginated, walked to its end with every row seen once,
also while rows are being added; schedules filtered by date range, period and status; and
conditional GETs (ETag, 304) so a crowd refreshing a list costs little.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from server import shapes
from server.shapes import browsing
from tests.http.conftest import (
    Answer,
    Client,
    ServeFn,
    admin_token,
    patient_token,
    schedule_in,
    unique,
)

VISIT = dt.date.today() + dt.timedelta(days=30)
ROWS_ADDED_PER_WALK = 5


async def admin(api: Client, method: str, path: str, body: Any = None) -> Answer:
    answer = await api.call(method, path, token=admin_token(), json=body)
    assert answer.status in (200, 204), answer.body
    return answer


async def walk(
    api: Client,
    path: str,
    field: str,
    *,
    limit: int,
    token: str | None = None,
    between_pages: Callable[[], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """Every row of a list, page by page, following next_cursor until it is null."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    joiner = "&" if "?" in path else "?"
    for _ in range(10_000):
        query = f"{joiner}limit={limit}" + ("" if cursor is None else f"&cursor={cursor}")
        answer = await api.call("GET", path + query, token=token)
        assert answer.status == 200, answer.body
        page = answer.json
        assert len(page[field]) <= limit
        rows.extend(page[field])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
        if between_pages is not None:
            await between_pages()
    raise AssertionError("the list never ended")


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


# --- public browsing ----------------------------------------------------------------------


async def test_hospitals_departments_and_doctors_are_public(api: Client) -> None:
    hospital = unique("h")
    await admin(
        api,
        "PUT",
        f"/v1/admin/hospitals/{hospital}",
        {"name": "Ruijin", "timezone": "Asia/Shanghai", "webhook_url": "https://his.example/n"},
    )
    for department in ("cardio", "neuro"):
        path = f"/v1/admin/hospitals/{hospital}/departments/{department}"
        await admin(api, "PUT", path, {"name": department.title()})
    for doctor, department in (("dr-a", "cardio"), ("dr-b", "neuro"), ("dr-c", "cardio")):
        path = f"/v1/admin/hospitals/{hospital}/doctors/{doctor}"
        await admin(api, "PUT", path, {"name": doctor, "department_id": department})

    one = await api.call("GET", f"/v1/hospitals/{hospital}")
    assert one.shaped(browsing.PublicHospital) == browsing.PublicHospital(
        id=hospital,
        name="Ruijin",
        timezone="Asia/Shanghai",
        cancel_cutoff_minutes=0,
        payment_window_minutes=15,
    )
    # A hospital's own settings (its webhook, when it settles) are not public.
    assert b"webhook" not in one.body and b"settle_at" not in one.body

    departments = await api.call("GET", f"/v1/hospitals/{hospital}/departments")
    page = departments.shaped(browsing.DepartmentPage)
    assert [d.name for d in page.departments] == ["Cardio", "Neuro"]
    assert page.next_cursor is None
    doctors = await api.call("GET", f"/v1/hospitals/{hospital}/doctors?department_id=cardio")
    doctors.shaped(browsing.DoctorPage)
    assert ids(doctors.json["doctors"]) == ["dr-a", "dr-c"]

    await admin(api, "DELETE", f"/v1/admin/hospitals/{hospital}/doctors/dr-c")
    doctors = await api.call("GET", f"/v1/hospitals/{hospital}/doctors")
    assert ids(doctors.json["doctors"]) == ["dr-a", "dr-b"]
    await admin(api, "DELETE", f"/v1/admin/hospitals/{hospital}")
    (await api.call("GET", f"/v1/hospitals/{hospital}")).problem(404, "hospital_not_found")
    gone = await api.call("GET", f"/v1/hospitals/{hospital}/departments")
    gone.problem(404, "hospital_not_found")


async def test_a_token_on_a_public_route_is_not_looked_at(api: Client) -> None:
    answer = await api.call("GET", "/v1/hospitals?limit=1", headers={"Authorization": "Bearer x"})
    assert answer.status == 200
    answer.shaped(browsing.HospitalPage)


# --- pages -----------------------------------------------------------------------------------


async def test_every_list_is_walked_to_its_end_once_while_rows_are_added(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    """On a server of its own, so that the whole of every list is known: each row there
    when the walk starts is seen exactly once, and no row twice, while a row is added
    before every page."""
    api = Client(session, (await serve("--strategy", "pg-pessimistic")).url)
    hospital, patient = "h-walk", "p-walk"
    await admin(api, "PUT", f"/v1/admin/hospitals/{hospital}", {"name": "W", "timezone": "UTC"})
    # One patient books many schedules of one day here.
    await admin(api, "PUT", f"/v1/admin/hospitals/{hospital}/rules", {"max_per_day": 100})
    hospitals = {hospital, *(f"h-{i}" for i in range(7))}
    for other in hospitals - {hospital}:
        await admin(api, "PUT", f"/v1/admin/hospitals/{other}", {"name": "H", "timezone": "UTC"})
    created = await api.create_schedules(
        *(
            schedule_in(hospital_id=hospital, department_id=f"d{i:02}", doctor_id=f"dr{i:02}")
            for i in range(23)
        )
    )
    for schedule in created[:11]:
        assert (await api.book(schedule["id"], patient)).status == 201
    added = Counter[str]()

    def adding(kind: str, add: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        """`add` before each of the first pages: rows keep coming, and the walk still ends."""

        async def add_one() -> None:
            if added[kind] < ROWS_ADDED_PER_WALK:
                await add()
                added[kind] += 1

        return add_one

    async def a_schedule() -> None:
        await api.create_schedules(schedule_in(hospital_id=hospital, doctor_id=unique("dr")))

    async def a_hospital() -> None:
        body = {"name": "x", "timezone": "UTC"}
        await admin(api, "PUT", f"/v1/admin/hospitals/{unique('h')}", body)

    async def a_department() -> None:
        path = f"/v1/admin/hospitals/{hospital}/departments/{unique('d')}"
        await admin(api, "PUT", path, {"name": "x"})

    async def a_doctor() -> None:
        path = f"/v1/admin/hospitals/{hospital}/doctors/{unique('dr')}"
        await admin(api, "PUT", path, {"name": "x", "department_id": "d00"})

    async def a_booking() -> None:
        (schedule,) = await api.create_schedules(
            schedule_in(hospital_id=hospital, department_id=unique("d"))
        )
        await api.book(schedule["id"], patient)

    patient_token_ = patient_token(patient)
    lists: list[tuple[str, str, str | None, Callable[[], Awaitable[None]], set[str]]] = [
        (
            f"/v1/schedules?hospital_id={hospital}",
            "schedules",
            patient_token_,
            a_schedule,
            set(ids(created)),
        ),
        ("/v1/hospitals", "hospitals", None, a_hospital, hospitals),
        (
            f"/v1/hospitals/{hospital}/departments",
            "departments",
            None,
            a_department,
            {f"d{i:02}" for i in range(23)},
        ),
        (
            f"/v1/hospitals/{hospital}/doctors",
            "doctors",
            None,
            a_doctor,
            {f"dr{i:02}" for i in range(23)},
        ),
        ("/v1/me/bookings", "bookings", patient_token_, a_booking, set()),
    ]
    bookings_before = await walk(
        api, "/v1/me/bookings", "bookings", limit=500, token=patient_token_
    )
    lists[-1][4].update(ids(bookings_before))
    assert len(lists[-1][4]) == 11
    for path, field, token, add, there in lists:
        for limit in (1, 4, 100):
            added.clear()
            rows = await walk(
                api, path, field, limit=limit, token=token, between_pages=adding(field, add)
            )
            seen = Counter(ids(rows))
            assert max(seen.values()) == 1, (path, limit, seen.most_common(3))
            assert there <= set(seen), (path, limit, there - set(seen))
            if limit < len(there):
                assert added[field] > 0, (path, limit)


async def test_my_bookings_come_newest_first_one_page_at_a_time(api: Client) -> None:
    patient = unique("p")
    hospital = unique("h")
    made = await api.create_schedules(
        *(schedule_in(hospital_id=hospital, department_id=f"d{i}") for i in range(2)),
        schedule_in(hospital_id=hospital, department_id="d0", visit_date="2031-01-05"),
    )
    booked = [(await api.book(s["id"], patient)).json["booking"]["id"] for s in made]
    rows = await walk(api, "/v1/me/bookings", "bookings", limit=2, token=patient_token(patient))
    assert ids(rows) == booked[::-1]


async def test_schedules_are_filtered_by_date_range_period_and_status(api: Client) -> None:
    hospital = unique("h")
    days = [(VISIT + dt.timedelta(days=i)).isoformat() for i in range(3)]
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    made = await api.create_schedules(
        schedule_in(hospital_id=hospital, visit_date=days[0], period="am", capacity=1),
        schedule_in(hospital_id=hospital, visit_date=days[1], period="pm"),
        schedule_in(hospital_id=hospital, visit_date=days[2], period="am", opens_at=soon),
    )
    assert (await api.book(made[0]["id"], unique("p"))).status == 201

    async def listed(query: str) -> list[str]:
        answer = await api.call(
            "GET", f"/v1/schedules?hospital_id={hospital}&{query}", token=patient_token("p")
        )
        assert answer.status == 200, answer.body
        answer.shaped(shapes.SchedulePage)
        return ids(answer.json["schedules"])

    all_ids = ids(made)
    assert await listed(f"from={days[1]}") == all_ids[1:]
    assert await listed(f"to={days[1]}") == all_ids[:2]
    assert await listed(f"from={days[1]}&to={days[1]}") == [all_ids[1]]
    assert await listed(f"from={days[2]}&to={days[0]}") == []
    assert await listed("period=am") == [all_ids[0], all_ids[2]]
    assert await listed("status=sold_out") == [all_ids[0]]
    assert await listed("status=open") == [all_ids[1]]
    assert await listed("status=not_open&period=am") == [all_ids[2]]
    assert await listed("status=closed") == []
    # Filters keep their page: the status filter too, page after page.
    one_by_one = await walk(
        api,
        f"/v1/schedules?hospital_id={hospital}&status=open",
        "schedules",
        limit=1,
        token=patient_token("p"),
    )
    assert ids(one_by_one) == [all_ids[1]]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=ten",
        "limit=1&limit=2",
        "cursor=",
        "cursor=not-a-cursor",
        "cursor=a+b",
        "period=dawn",
        "status=booked",
        "from=2031-02-30",
    ],
)
async def test_a_bad_page_query_is_invalid(api: Client, query: str) -> None:
    answer = await api.call("GET", f"/v1/schedules?{query}", token=patient_token("p"))
    answer.problem(400, "invalid_request")


async def test_a_cursor_is_good_only_as_given_for_its_own_list(api: Client) -> None:
    hospital = unique("h")
    await api.create_schedules(*(schedule_in(hospital_id=hospital) for _ in range(3)))
    token = patient_token("p")
    path = f"/v1/schedules?hospital_id={hospital}&limit=1"
    cursor = (await api.call("GET", path, token=token)).json["next_cursor"]
    assert (await api.call("GET", f"{path}&cursor={cursor}", token=token)).status == 200

    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-3] ^= 1  # one bit of the key
    edited = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    wrong = {
        "edited": f"{path}&cursor={edited}",
        "truncated": f"{path}&cursor={cursor[:-2]}",
        "of other filters": f"{path}&period=am&cursor={cursor}",
        "of another hospital": f"/v1/schedules?hospital_id={unique('h')}&cursor={cursor}",
        "of another list": f"/v1/hospitals?cursor={cursor}",
        "of my bookings": f"/v1/me/bookings?cursor={cursor}",
    }
    for name, refused in wrong.items():
        answer = await api.call("GET", refused, token=token)
        assert answer.status == 400, name
        answer.problem(400, "invalid_request")
    # The page size may change between pages: it is not part of the list.
    other_size = f"/v1/schedules?hospital_id={hospital}&limit=5&cursor={cursor}"
    assert len((await api.call("GET", other_size, token=token)).json["schedules"]) == 2


# --- caching -----------------------------------------------------------------------------------


async def test_gets_carry_an_etag_and_answer_304_while_it_is_current(api: Client) -> None:
    schedule = await api.create_schedule()
    hospital = schedule["hospital_id"]
    token = patient_token(unique("p"))
    cases = [
        (f"/v1/schedules?hospital_id={hospital}", token, "private, max-age=1"),
        (f"/v1/schedules/{schedule['id']}", token, "private, max-age=1"),
        ("/v1/me/bookings", token, "private, no-cache"),
        (f"/v1/hospitals/{hospital}", None, "public, max-age=5"),
        (f"/v1/hospitals/{hospital}/departments", None, "public, max-age=5"),
        (f"/v1/admin/hospitals/{hospital}/rules", admin_token(), "private, no-cache"),
    ]
    for path, who, cache_control in cases:
        first = await api.call("GET", path, token=who)
        assert first.status == 200, (path, first.body)
        etag = first.headers["ETag"]
        assert etag.startswith('"') and etag.endswith('"'), etag
        assert first.headers["Cache-Control"] == cache_control, path
        again = await api.call("GET", path, token=who, headers={"If-None-Match": etag})
        assert (again.status, again.body) == (304, b""), path
        assert again.headers["ETag"] == etag
        assert again.headers["Cache-Control"] == cache_control
        for header in (f"W/{etag}", f'"nope", {etag}', "*"):
            matched = await api.call("GET", path, token=who, headers={"If-None-Match": header})
            assert matched.status == 304, (path, header)
        stale = await api.call("GET", path, token=who, headers={"If-None-Match": '"nope"'})
        assert stale.status == 200 and stale.body == first.body

    # A change makes a new ETag.
    departments = f"/v1/hospitals/{hospital}/departments"
    before = (await api.call("GET", departments)).headers["ETag"]
    await admin(api, "PUT", f"/v1/admin/hospitals/{hospital}/departments/new", {"name": "New"})
    after = await api.call("GET", departments, headers={"If-None-Match": before})
    assert after.status == 200 and after.headers["ETag"] != before


async def test_a_crowd_refreshing_a_list_with_its_etag_costs_a_fraction(api: Client) -> None:
    """The figure: a crowd re-reading a page of 100 schedules, with and without its ETag."""
    hospital = unique("h")
    await api.create_schedules(*(schedule_in(hospital_id=hospital) for _ in range(100)))
    path = f"/v1/schedules?hospital_id={hospital}"
    token = patient_token(unique("p"))
    etag = (await api.call("GET", path, token=token)).headers["ETag"]
    crowd, concurrency = 400, 20

    async def refresh(headers: dict[str, str]) -> tuple[float, int]:
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> int:
            async with semaphore:
                answer = await api.call("GET", path, token=token, headers=headers)
                return len(answer.body)

        sizes = await asyncio.gather(*(one() for _ in range(crowd)))
        return time.perf_counter() - started, sum(sizes)

    full_time, full_bytes = await refresh({})
    cached_time, cached_bytes = await refresh({"If-None-Match": etag})
    print(
        f"\n{crowd} refreshes of a page of 100 schedules: {full_bytes:,} body bytes in "
        f"{full_time:.2f} s without If-None-Match, {cached_bytes:,} in {cached_time:.2f} s with it"
    )
    assert cached_bytes == 0 and full_bytes > crowd * 20_000
