"""Records: a hospital's bookings by visit date, filtered, paged by cursor, or streamed as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from core.records import EXPORT_BATCH_ROWS
from server.shapes import records as shapes
from tests.http.conftest import (
    Answer,
    Client,
    admin_token,
    fill,
    schedule_in,
    settle,
    unique,
)

CSV = {"Accept": "text/csv"}
DAY_1, DAY_2, DAY_3 = "2031-03-01", "2031-03-02", "2031-03-03"


def records_path(hospital: str, query: str = "") -> str:
    return f"/v1/admin/hospitals/{hospital}/bookings{'?' + query if query else ''}"


async def read(api: Client, hospital: str, query: str = "", **kwargs: Any) -> Answer:
    return await api.call("GET", records_path(hospital, query), token=admin_token(), **kwargs)


async def listed(api: Client, hospital: str, query: str = "") -> list[dict[str, Any]]:
    answer = await read(api, hospital, query)
    assert answer.status == 200, answer.body
    answer.shaped(shapes.BookingRecords)
    assert answer.json["next_cursor"] is None
    bookings: list[dict[str, Any]] = answer.json["bookings"]
    return bookings


async def book(api: Client, schedule: dict[str, Any], patient: str | None = None) -> str:
    answer = await api.book(schedule["id"], patient or unique("p"))
    assert answer.status == 201, answer.body
    booking_id: str = answer.json["booking"]["id"]
    return booking_id


@dataclass
class Hospital:
    id: str
    # Booking ids by (visit date, department, doctor), in booking order.
    bookings: dict[tuple[str, str, str], list[str]]

    def ids(self, keep: Any = lambda key: True) -> list[str]:
        return [i for key in sorted(self.bookings) if keep(key) for i in self.bookings[key]]


async def a_hospital(api: Client) -> Hospital:
    """Two bookings on each of four schedules over three days, two departments, two doctors;
    and a booking at another hospital on the same days, which must never show."""
    hospital = unique("h")
    keys = [(DAY_1, "a", "x"), (DAY_2, "a", "y"), (DAY_2, "b", "x"), (DAY_3, "b", "y")]
    schedules = await api.create_schedules(
        *(
            schedule_in(
                hospital_id=hospital, visit_date=d, department_id=dep, doctor_id=doc, capacity=5
            )
            for d, dep, doc in keys
        ),
        schedule_in(visit_date=DAY_2),
    )
    made = {
        key: [await book(api, s), await book(api, s)]
        for key, s in zip(keys, schedules[:-1], strict=True)
    }
    await book(api, schedules[-1])
    return Hospital(hospital, made)


async def test_records_are_the_hospitals_bookings_in_visit_date_order(api: Client) -> None:
    hospital = await a_hospital(api)
    records = await listed(api, hospital.id)
    assert [r["id"] for r in records] == hospital.ids()
    first = records[0]
    assert "verification_code" not in first
    assert (first["hospital_id"], first["visit_date"], first["department_id"]) == (
        hospital.id,
        DAY_1,
        "a",
    )
    assert (first["doctor_id"], first["period"], first["fee_cents"]) == ("x", "am", 0)
    assert (first["status"], first["cancelled_at"], first["number"]) == ("booked", None, 1)


async def test_a_page_of_records_is_conditional_on_its_etag(api: Client) -> None:
    # The staff console polls a hospital's holds: while they are unchanged it gets a 304.
    hospital = await a_hospital(api)
    first = await read(api, hospital.id)
    assert first.headers["Cache-Control"] == "private, no-cache"
    etag = first.headers["ETag"]
    again = await read(api, hospital.id, headers={"If-None-Match": etag})
    assert (again.status, again.body) == (304, b"")
    await book(api, (await api.create_schedules(schedule_in(hospital_id=hospital.id)))[0])
    changed = await read(api, hospital.id, headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


async def test_a_page_is_shared_only_with_requests_that_accept_its_age(api: Client) -> None:
    # The console's holds poll says `Cache-Control: max-age=5`: a hospital's consoles then
    # share one read; a request without it always reads the ledger.
    hospital = await a_hospital(api)
    shared = {"Cache-Control": "max-age=60"}
    first = await read(api, hospital.id, headers=shared)
    await book(api, (await api.create_schedules(schedule_in(hospital_id=hospital.id)))[0])
    kept = await read(api, hospital.id, headers=shared)
    assert kept.headers["ETag"] == first.headers["ETag"]
    fresh = await read(api, hospital.id)
    assert len(fresh.json["bookings"]) == len(first.json["bookings"]) + 1
    for refuses_age in ({"Cache-Control": "max-age=0"}, {"Cache-Control": "no-cache, max-age=60"}):
        answer = await read(api, hospital.id, headers=refuses_age)
        assert answer.headers["ETag"] == fresh.headers["ETag"]


async def test_records_filter_by_dates_department_doctor_and_status(
    api: Client, shared_ledger: asyncpg.Connection
) -> None:
    hospital = await a_hospital(api)
    cancelled, attended, no_show = hospital.bookings[(DAY_2, "a", "y")] + [
        hospital.bookings[(DAY_3, "b", "y")][0]
    ]
    await settle(shared_ledger, cancelled, "cancelled")
    await settle(shared_ledger, attended, "attended")
    await settle(shared_ledger, no_show, "no_show")

    async def ids(query: str) -> list[str]:
        return [r["id"] for r in await listed(api, hospital.id, query)]

    assert await ids(f"from={DAY_2}") == hospital.ids(lambda k: k[0] >= DAY_2)
    assert await ids(f"to={DAY_2}") == hospital.ids(lambda k: k[0] <= DAY_2)
    assert await ids(f"from={DAY_2}&to={DAY_2}") == hospital.ids(lambda k: k[0] == DAY_2)
    assert await ids("department_id=a") == hospital.ids(lambda k: k[1] == "a")
    assert await ids("doctor_id=x") == hospital.ids(lambda k: k[2] == "x")
    assert await ids("department_id=b&doctor_id=y") == hospital.ids(lambda k: k[1:] == ("b", "y"))
    assert await ids("status=cancelled") == [cancelled]
    assert await ids("status=attended") == [attended]
    assert await ids("status=no_show") == [no_show]
    assert len(await ids("status=booked")) == 5
    assert await ids(f"from={DAY_3}&to={DAY_1}") == []
    assert await ids("department_id=c") == []


async def test_a_hospital_without_bookings_has_an_empty_first_and_last_page(api: Client) -> None:
    answer = await read(api, unique("h"))
    assert answer.status == 200 and answer.json == {"bookings": [], "next_cursor": None}


async def walk(api: Client, hospital: str, limit: int) -> list[list[str]]:
    """The ids of every page, following next_cursor to the end."""
    pages: list[list[str]] = []
    query = f"limit={limit}"
    while True:
        answer = await read(api, hospital, query)
        assert answer.status == 200, answer.body
        page = answer.shaped(shapes.BookingRecords)
        pages.append([r.id for r in page.bookings])
        if page.next_cursor is None:
            return pages
        query = f"limit={limit}&cursor={page.next_cursor}"


@pytest.mark.parametrize("limit", [1, 3, 7, 8, 500])
async def test_pages_walk_every_record_exactly_once(api: Client, limit: int) -> None:
    hospital = await a_hospital(api)
    pages = await walk(api, hospital.id, limit)
    assert [i for page in pages for i in page] == hospital.ids()
    assert all(len(page) == limit for page in pages[:-1])
    # The last page is never empty, except for a hospital with nothing at all.
    assert 1 <= len(pages[-1]) <= limit


async def test_bookings_made_during_a_walk_never_shift_the_pages_to_come(api: Client) -> None:
    hospital = unique("h")
    day_1, day_2, day_3 = await api.create_schedules(
        *(
            schedule_in(hospital_id=hospital, visit_date=d, capacity=10)
            for d in (DAY_1, DAY_2, DAY_3)
        )
    )
    before = [await book(api, s) for s in (day_1, day_1, day_2, day_2, day_3)]
    first = await read(api, hospital, "limit=3")
    assert [r["id"] for r in first.json["bookings"]] == before[:3]
    # Behind the position reached (an earlier visit date) and ahead of it: neither moves a
    # row of the pages to come, and only the one ahead is on them.
    behind, ahead = await book(api, day_1), await book(api, day_3)
    rest = await read(api, hospital, f"limit=10&cursor={first.json['next_cursor']}")
    assert [r["id"] for r in rest.json["bookings"]] == [*before[3:], ahead]
    assert behind not in {r["id"] for r in rest.json["bookings"]}


@pytest.mark.parametrize("cursor", ["AAAAAAAAAAAAAAAA", "________________", "Zm9vYmFyYmF6cXV4"])
async def test_any_well_formed_cursor_is_a_position_never_an_error(
    api: Client, cursor: str
) -> None:
    answer = await read(api, unique("h"), f"cursor={cursor}")
    assert answer.status == 200 and answer.json == {"bookings": [], "next_cursor": None}


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=ten",
        "limit=2.5",
        "limit=5&limit=6",
        "cursor=short",
        "cursor=AAAAAAAAAAAAAAA=",
        "cursor=AAAAAAAAAAAAAAAAA",
        "status=lost",
        "from=2031-02-30",
        "to=31-03-01",
        "department_id=a%20b",
        "doctor_id=" + "x" * 65,
        "hospital_id=h1",
    ],
)
async def test_a_bad_records_query_is_invalid(api: Client, query: str) -> None:
    (await read(api, "h1", query)).problem(400, "invalid_request")
    (await read(api, "h1", query, headers=CSV)).problem(400, "invalid_request")


# --- CSV ----------------------------------------------------------------------------------------


def parsed(answer: Answer) -> list[list[str]]:
    text = answer.body.decode()
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    return list(csv.reader(io.StringIO(text, newline="")))


def as_cells(record: dict[str, Any]) -> list[str]:
    return ["" if v is None else str(v) for v in record.values()]


async def test_csv_streams_every_matching_row_as_the_json_has_it(
    api: Client, shared_ledger: asyncpg.Connection
) -> None:
    hospital = await a_hospital(api)
    await settle(shared_ledger, hospital.bookings[(DAY_1, "a", "x")][0], "no_show")
    answer = await read(api, hospital.id, headers=CSV)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8; header=present"
    assert answer.headers["Transfer-Encoding"] == "chunked"
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="bookings-{hospital.id}.csv"'
    )
    header, *rows = parsed(answer)
    assert header == list(shapes.BookingRecord.__struct_fields__)
    assert rows == [as_cells(r) for r in await listed(api, hospital.id)]
    filtered = await read(api, hospital.id, "department_id=b&status=booked", headers=CSV)
    assert parsed(filtered)[1:] == [
        as_cells(r) for r in await listed(api, hospital.id, "department_id=b&status=booked")
    ]


async def test_csv_of_nothing_is_its_header_line(api: Client) -> None:
    answer = await read(api, unique("h"), headers=CSV)
    assert answer.status == 200
    assert answer.body == (",".join(shapes.BookingRecord.__struct_fields__) + "\r\n").encode()


async def test_cells_a_spreadsheet_would_run_are_quoted_as_text(api: Client) -> None:
    # Of = + - @, only - can start an id; the rest are unit tests of server.csv_export.
    schedule = await api.create_schedule(doctor_id="-dr.who", department_id="-1")
    await book(api, schedule, patient="-SUM.A1")
    header, row = parsed(await read(api, schedule["hospital_id"], headers=CSV))
    cells = dict(zip(header, row, strict=True))
    assert (cells["patient_id"], cells["doctor_id"]) == ("'-SUM.A1", "'-dr.who")
    assert (cells["department_id"], cells["hospital_id"]) == ("'-1", schedule["hospital_id"])


@pytest.mark.parametrize("query", ["limit=5", "cursor=AAAAAAAAAAAAAAAA"])
async def test_csv_is_every_row_so_paging_it_is_refused(api: Client, query: str) -> None:
    (await read(api, "h1", query, headers=CSV)).problem(400, "invalid_request")


@pytest.mark.parametrize(
    ("accept", "csv_answer"),
    [
        ("text/csv", True),
        ("application/json;q=0.9, TEXT/CSV", True),
        ("text/csv;q=0.5", True),
        ("text/csv;q=0, application/json", False),
        ("text/csv; q=0.0", False),
        ("text/*", False),
        ("*/*", False),
        ("application/json", False),
    ],
)
async def test_the_accept_header_chooses_csv(api: Client, accept: str, csv_answer: bool) -> None:
    answer = await read(api, unique("h"), headers={"Accept": accept})
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/csv" if csv_answer else "application/")


async def test_more_rows_than_one_batch_page_and_stream_alike(
    api: Client, shared_ledger: asyncpg.Connection
) -> None:
    count = 2 * EXPORT_BATCH_ROWS + 17
    schedule = await api.create_schedule(capacity=count)
    await fill(shared_ledger, schedule["id"])
    pages = await walk(api, schedule["hospital_id"], 500)
    assert [len(p) for p in pages] == [500, 500, 500, 500, 17]
    ids = [i for p in pages for i in p]
    _, *rows = parsed(await read(api, schedule["hospital_id"], headers=CSV))
    assert [r[0] for r in rows] == ids and len(set(ids)) == count
