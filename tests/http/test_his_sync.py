"""HIS sync through HTTP and the `slotrush his-sync` command: the sample feeds of
examples/his as JSON and CSV, the dry run, the per-row diff, malformed bodies, the upsert of
POST /v1/admin/schedules by external_id."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.shapes import ScheduleList
from server.shapes.his_sync import HisSyncReport
from tests.http.conftest import REPO, Client, admin_token, schedule_in, unique
from tests.http.test_cli import slotrush

EXAMPLES = REPO / "examples" / "his"
# Read once: the samples are small.
SAMPLES = {path.name: path.read_bytes() for path in EXAMPLES.iterdir()}
CSV = {"Content-Type": "text/csv"}


async def demo_hospital(api: Client) -> str:
    """A hospital with what the sample feeds name."""
    hospital = unique("his")
    base = f"/v1/admin/hospitals/{hospital}"
    puts = [
        (base, {"name": "Demo", "timezone": "Asia/Shanghai"}),
        (base + "/departments/cardio", {"name": "Cardiology"}),
        (base + "/departments/derm", {"name": "Dermatology"}),
        (base + "/doctors/dr-li", {"name": "Li", "department_id": "cardio"}),
        (base + "/doctors/dr-wang", {"name": "Wang", "department_id": "derm"}),
    ]
    for path, body in puts:
        answer = await api.call("PUT", path, token=admin_token(), json=body)
        assert answer.status == 200, answer.body
    return hospital


async def sync(api: Client, hospital: str, feed: Path, query: str = "") -> HisSyncReport:
    headers = CSV if feed.suffix == ".csv" else {"Content-Type": "application/json"}
    answer = await api.call(
        "POST",
        f"/v1/admin/hospitals/{hospital}/his-sync{query}",
        token=admin_token(),
        data=SAMPLES[feed.name],
        headers=headers,
    )
    assert answer.status == 200, answer.body
    return answer.shaped(HisSyncReport)


def counts(report: HisSyncReport) -> tuple[int, ...]:
    return (report.created, report.updated, report.suspended, report.unchanged, report.conflicts)


async def test_the_json_and_csv_samples_are_one_feed(api: Client) -> None:
    hospital = await demo_hospital(api)

    dry = await sync(api, hospital, EXAMPLES / "feed.json", "?dry_run=true")
    applied = await sync(api, hospital, EXAMPLES / "feed.json")
    as_csv = await sync(api, hospital, EXAMPLES / "feed.csv")

    assert counts(dry) == counts(applied) == (3, 0, 0, 0, 0)
    assert dry.dry_run and [r.action for r in dry.rows] == ["create"] * 3
    assert counts(as_csv) == (0, 0, 0, 3, 0) and as_csv.rows == []


async def test_the_next_days_feed_grows_suspends_and_creates(api: Client) -> None:
    hospital = await demo_hospital(api)
    await sync(api, hospital, EXAMPLES / "feed.csv")

    dry = await sync(api, hospital, EXAMPLES / "feed-next-day.csv", "?dry_run=true")
    report = await sync(api, hospital, EXAMPLES / "feed-next-day.csv")
    again = await sync(api, hospital, EXAMPLES / "feed-next-day.csv")

    assert counts(dry) == counts(report) == (1, 1, 1, 1, 0)
    by_action = {r.action: r for r in report.rows}
    assert [(c.field, c.before, c.after) for c in by_action["update"].changes] == [
        ("capacity", 30, 45)
    ]
    assert by_action["suspend"].external_id == "S-2099-01-05-LI-PM"
    assert counts(again) == (0, 0, 0, 3, 0)
    listed = await api.call("GET", f"/v1/schedules?hospital_id={hospital}", token=admin_token())
    statuses = {s["external_id"]: s["status"] for s in listed.json["schedules"]}
    assert statuses["S-2099-01-05-LI-PM"] == "suspended"


async def test_bad_rows_are_reported_per_row_with_their_line(api: Client) -> None:
    hospital = await demo_hospital(api)
    feed = (
        "external_id,department_id,doctor_id,visit_date,period,capacity\r\n"
        "ok,cardio,dr-li,2099-02-01,am,5\r\n"
        "bad-date,cardio,dr-li,2099-02-30,am,5\r\n"
        "bad-period,cardio,dr-li,2099-02-01,noon,5\r\n"
        "bad-doctor,cardio,dr-who,2099-02-01,am,5\r\n"
        "bad-capacity,cardio,dr-li,2099-02-01,pm,many\r\n"
    )
    answer = await api.call(
        "POST",
        f"/v1/admin/hospitals/{hospital}/his-sync",
        token=admin_token(),
        data=feed.encode(),
        headers=CSV,
    )

    report = answer.shaped(HisSyncReport)
    assert (report.created, report.errors) == (1, 4)
    assert [(r.line, r.code) for r in report.rows if r.action == "error"] == [
        (3, "invalid_request"),
        (4, "invalid_request"),
        (5, "doctor_not_found"),
        (6, "invalid_request"),
    ]


async def test_malformed_feeds_are_400_and_an_unknown_hospital_404(api: Client) -> None:
    hospital = await demo_hospital(api)
    path = f"/v1/admin/hospitals/{hospital}/his-sync"
    bad = [
        (b"{not json", {"Content-Type": "application/json"}),
        (b'{"schedules": [{"external_id": 5}]}', {"Content-Type": "application/json"}),
        (b"external_id,capacity\r\nx,1\r\n", CSV),
        (b"external_id,whatever\r\n", CSV),
        (b"\xff\xfe", CSV),
        (b"<feed/>", {"Content-Type": "application/xml"}),
    ]
    for body, headers in bad:
        answer = await api.call("POST", path, token=admin_token(), data=body, headers=headers)
        answer.problem(400, "invalid_request", frozenset({"detail"}))
    missing = await api.call(
        "POST",
        f"/v1/admin/hospitals/{unique('none')}/his-sync",
        token=admin_token(),
        json={"schedules": []},
    )
    missing.problem(404, "hospital_not_found", frozenset({"detail"}))


async def test_posting_a_schedule_twice_by_external_id_answers_201_then_200(api: Client) -> None:
    item = schedule_in(hospital_id=unique("up"), external_id="E-1", capacity=2)

    first = await api.call("POST", "/v1/admin/schedules", token=admin_token(), json=item)
    again = await api.call("POST", "/v1/admin/schedules", token=admin_token(), json=item)
    grown = await api.call(
        "POST", "/v1/admin/schedules", token=admin_token(), json={**item, "capacity": 3}
    )

    assert (first.status, again.status, grown.status) == (201, 200, 200)
    schedules = [a.shaped(ScheduleList).schedules[0] for a in (first, again, grown)]
    assert len({s.id for s in schedules}) == 1
    assert [s.capacity for s in schedules] == [2, 2, 3]
    assert schedules[0].external_id == "E-1"
    held = await api.book(schedules[0].id, unique("p"))
    assert held.status == 201
    cut = await api.call(
        "POST", "/v1/admin/schedules", token=admin_token(), json={**item, "capacity": 1}
    )
    assert cut.status == 200  # number 1 is held, 2 and 3 are free
    moved = await api.call(
        "POST", "/v1/admin/schedules", token=admin_token(), json={**item, "period": "night"}
    )
    moved.problem(409, "schedule_moved", frozenset({"detail"}))


async def test_the_command_sends_a_feed_and_says_what_changed(api: Client) -> None:
    hospital = await demo_hospital(api)
    command = ("his-sync", str(EXAMPLES / "feed.csv"), "--hospital", hospital, "--url", api.url)

    dry = await asyncio.to_thread(slotrush, *command, "--dry-run")
    applied = await asyncio.to_thread(slotrush, *command)
    refused = await asyncio.to_thread(slotrush, *command[:3], "nope!", "--url", api.url)

    assert dry.returncode == 0, dry.stderr
    assert '"dry_run": true' in dry.stdout and '"created": 3' in dry.stdout
    assert applied.returncode == 0 and '"created": 3' in applied.stdout
    assert refused.returncode == 2 and "invalid_request" in refused.stderr
