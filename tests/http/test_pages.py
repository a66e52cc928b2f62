"""The pages of issue 14 in a real browser (Debian's Chromium, headless): the patient's
whole flow from browsing to cancelling, a payment at the sandbox provider and its refund, a
staff check-in, a suspension with its preview, an automatic blacklist entry and its events,
the HIS sync preview then applied, and a hospital administrator who cannot reach another
hospital's data.

One server with the demo data (bench.demo) serves the module; every test opens its own
browser context, so tokens (kept per tab) never leak between tests. With SLOTRUSH_SCREENS
set to a folder, each test leaves a screenshot of its page there (results/screens/ holds
the committed ones).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bench.demo import TIMEZONE, Demo, seed
from bench.embedded import ServiceUrls
from bench.stack import fresh_database, fresh_prefix
from core.tokens import issue_token
from loadtest.client.seed import AdminClient
from tests.http import chromium
from tests.http.conftest import (
    SECRET,
    Client,
    Served,
    patient_token,
    server_env,
    start_server,
    unique,
)
from tests.sandbox import complete, sandbox_process

# Long enough for a poll (every 1-2 s) on a loaded machine; no assertion is about speed.
WAIT_MS = 20_000
PHONE = {"width": 390, "height": 844}


@dataclass
class Site:
    served: Served
    demo: Demo
    sandbox_url: str

    @property
    def url(self) -> str:
        return self.served.url


@pytest.fixture(scope="module")
def pages_stores(service_urls: ServiceUrls) -> Iterator[tuple[str, str]]:
    """(database url, Redis prefix) of this module's server, with the demo's fixed ids."""
    with (
        fresh_database(service_urls.database_url, "pages") as database_url,
        fresh_prefix(service_urls.redis_url, "pages") as prefix,
    ):
        yield database_url, prefix


@pytest.fixture(scope="module")
async def site(
    service_urls: ServiceUrls,
    pages_stores: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Site]:
    logs = tmp_path_factory.mktemp("pages")
    # A provider of its own: the package's sandbox notifies the package's server.
    async with sandbox_process(logs) as sandbox_url:
        env = server_env(
            service_urls.redis_url, *pages_stores, SLOTRUSH_PAY_SANDBOX_URL=sandbox_url
        )
        served = await start_server(env, logs / "serve.log", "--strategy", "pg-pessimistic")
        try:
            await notify(sandbox_url, served.url)
            demo = await asyncio.to_thread(seed, AdminClient(served.url, SECRET), crowd=8)
            yield Site(served, demo, sandbox_url)
        finally:
            assert await served.stop() == 0, served.log_text()
    assert "Traceback" not in served.log_text()


async def notify(sandbox_url: str, server_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        webhook = {"webhook_url": f"{server_url}/v1/payments/sandbox/webhook"}
        async with session.post(f"{sandbox_url}/control", json=webhook) as told:
            assert told.status == 200, await told.text()


@pytest.fixture(scope="module")
async def browser(site: Site) -> AsyncIterator[Any]:
    async with chromium.async_playwright()() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium.CHROMIUM, headless=True, args=chromium.CHROMIUM_FLAGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def api(site: Site) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, site.url)


@pytest.fixture
async def open_page(browser: Any, site: Site) -> AsyncIterator[Any]:
    """open_page(path, token, viewport=...) -> a page of a fresh context; a script error on
    it fails the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    async def open_page(path: str, token: str, viewport: dict[str, int] | None = None) -> Any:
        context = await browser.new_context(viewport=viewport or {"width": 1200, "height": 900})
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"{site.url}{path}#token={token}")
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert errors == []


async def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("SLOTRUSH_SCREENS")
    if folder:
        # Playwright makes the folder.
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def staff_token(hospital: str) -> str:
    return issue_token(SECRET, subject=f"staff-{hospital}", hospital_id=hospital)


def hospital_today(days: int = 0) -> str:
    """The demo hospital's date, `days` after today."""
    return (dt.datetime.now(ZoneInfo(TIMEZONE)).date() + dt.timedelta(days=days)).isoformat()


def tomorrows_session(page: Any) -> Any:
    """An open session of the hospital's tomorrow: today's may be past its cancel window
    (an hour before it starts), and the tests run at any hour."""
    tomorrow = page.get_by_role("button", name=f"Book {hospital_today(1)}", exact=False)
    return page.locator("#sessions li.session.open").filter(has=tomorrow).first


async def new_session(api: Client, doctor: str, **fields: Any) -> dict[str, Any]:
    """A session of riverside's pediatrics for a doctor of its own (so no other test's
    bookings touch it), today unless told."""
    body = {
        "hospital_id": "riverside",
        "department_id": "pediatrics",
        "doctor_id": doctor,
        "visit_date": hospital_today(),
        "period": "night",
        "capacity": 5,
        **fields,
    }
    return await api.create_schedule(**body)


async def choose(page: Any, department: str, doctor: str) -> None:
    await page.select_option("#hospital", "riverside")
    await page.select_option("#department", department)
    await page.select_option("#doctor", doctor)
    # The list follows the choice by a request: until it came, it shows the doctor before.
    await page.locator(f'#sessions li.session[data-doctor="{doctor}"]').first.wait_for(
        timeout=WAIT_MS
    )


# --- the patient ---------------------------------------------------------------------------


async def test_a_patient_browses_books_sees_the_code_and_cancels(open_page: Any) -> None:
    page = await open_page("/book", patient_token(unique("p")), PHONE)
    await choose(page, "cardiology", "dr-li")
    session = tomorrows_session(page)
    before = await session.locator(".left").text_content()
    await session.get_by_role("button").click()

    status = page.locator("#status")
    await status.filter(has_text="Booked: number").wait_for(timeout=WAIT_MS)
    assert "success" in (await status.get_attribute("class") or "")
    code = await page.locator("#booking-code").text_content()
    assert code and len(code) >= 6
    assert await page.locator("#booking-status").text_content() == "booked"
    # The result takes the focus, so a screen reader reads the booking out.
    assert await page.evaluate("document.activeElement.id") == "result"
    # Live remaining: the session now shows one number fewer.
    # (found again by its schedule: each poll draws the list anew)
    booked = await session.get_attribute("data-schedule")
    await page.wait_for_function(
        "([id, before]) => document.querySelector(`#sessions li[data-schedule='${id}'] .left`)"
        ".textContent !== before",
        arg=[booked, before],
        timeout=WAIT_MS,
    )
    await screenshot(page, "book-phone")

    mine = page.locator("#my-bookings li.booking.booked")
    await mine.get_by_role("button", name="Cancel").click()
    await mine.get_by_role("button", name="Yes, cancel number").click()
    await status.filter(has_text="Cancelled number").wait_for(timeout=WAIT_MS)
    assert "Nothing was paid" in (await status.text_content() or "")
    await page.locator("#my-bookings li.booking.cancelled").wait_for(timeout=WAIT_MS)


async def test_a_sold_out_answer_is_shown_as_sold_out_not_as_an_error(
    open_page: Any, api: Client
) -> None:
    doctor = unique("dr")
    schedule = await new_session(api, doctor, capacity=1)
    page = await open_page("/book", patient_token(unique("p")))
    await choose(page, "pediatrics", doctor)
    book = page.locator("#sessions").get_by_role("button")
    await book.wait_for(timeout=WAIT_MS)
    # Someone else takes the last number; this page's view stays as it was (its polls
    # answered "not modified"), as during a rush between two polls.
    await page.route("**/v1/schedules?*", lambda route: route.fulfill(status=304))
    assert (await api.book(schedule["id"], unique("p"))).status == 201
    await book.click()

    status = page.locator("#status")
    await status.filter(has_text="Sold out").wait_for(timeout=WAIT_MS)
    assert "soldout" in (await status.get_attribute("class") or "")
    await screenshot(page, "book-sold-out")


async def test_a_late_answer_about_the_doctor_before_leaves_the_chosen_ones_sessions(
    open_page: Any, api: Client
) -> None:
    doctor = unique("dr")
    await new_session(api, doctor)
    page = await open_page("/book", patient_token(unique("p")))

    async def others_late(route: Any) -> None:
        if f"doctor_id={doctor}" not in route.request.url:
            await asyncio.sleep(2)
        await route.continue_()

    # The department's first doctor is asked for first, and answered after the choice.
    await page.route("**/v1/schedules?*", others_late)
    await choose(page, "pediatrics", doctor)
    await page.wait_for_timeout(3000)
    shown = await page.locator("#sessions li.session").evaluate_all(
        "items => items.map((li) => li.dataset.doctor)"
    )
    assert shown and set(shown) == {doctor}, shown


async def test_a_paid_booking_is_paid_at_checkout_and_refunded_on_cancel(
    open_page: Any, site: Site
) -> None:
    page = await open_page("/book", patient_token(unique("p")))
    await choose(page, "cardiology", "dr-chen")
    await tomorrows_session(page).get_by_role("button").click()
    await page.locator("#booking-status").filter(has_text="pending payment").wait_for()
    await page.get_by_role("button", name="Pay").click()
    link = page.locator("#checkout-link")
    await link.wait_for(timeout=WAIT_MS)
    checkout = await link.get_attribute("href") or ""
    assert checkout.startswith(f"{site.sandbox_url}/checkouts/")

    # The patient pays at the provider; its webhook tells the server, the page sees it.
    async with aiohttp.ClientSession() as session:
        await complete(session, site.sandbox_url, checkout.rsplit("/", 1)[1], "succeeded")
    status = page.locator("#status")
    await status.filter(has_text="Paid: number").wait_for(timeout=WAIT_MS)
    await screenshot(page, "book-paid")

    mine = page.locator("#my-bookings li.booking.booked")
    assert "payment paid" in (await mine.text_content() or "")
    await mine.get_by_role("button", name="Cancel").click()
    await mine.get_by_role("button", name="Yes, cancel number").click()
    await status.filter(has_text="Cancelled number").wait_for(timeout=WAIT_MS)
    assert "30.00 being refunded" in (await status.text_content() or "")
    # The refund job asks the provider; the booking then says it is refunded.
    refunded = page.locator("#my-bookings li.booking.cancelled", has_text="payment refunded")
    async with asyncio.timeout(WAIT_MS / 1000):
        while not await refunded.count():
            await page.get_by_role("button", name="Refresh").click()
            await page.wait_for_timeout(500)


# --- the staff console ----------------------------------------------------------------------


async def test_staff_check_a_patient_in_by_code(open_page: Any, api: Client) -> None:
    doctor = unique("dr")
    schedule = await new_session(api, doctor)
    booked = await api.book(schedule["id"], unique("p"))
    assert booked.status == 201, booked.body
    code = booked.json["booking"]["verification_code"]
    page = await open_page("/console", staff_token("riverside"))
    # The live fill shows the session with its booking.
    row = page.locator(f'#fill li[data-schedule="{schedule["id"]}"]')
    await row.filter(has_text="1 of 5 taken").wait_for(timeout=WAIT_MS)

    await page.get_by_label("Verification code").fill("ZZZZZZZZ")
    await page.get_by_role("button", name="Check in").click()
    await page.locator("#checkin-result").filter(has_text="No booking of today").wait_for()
    await page.get_by_label("Verification code").fill(code.lower())
    await page.get_by_role("button", name="Check in").click()
    result = page.locator("#checkin-ok")
    await result.wait_for(timeout=WAIT_MS)
    assert f"number {booked.json['booking']['number']}" in (await result.text_content() or "")
    await screenshot(page, "console")


async def test_staff_suspend_a_session_after_seeing_what_it_will_do(
    open_page: Any, api: Client
) -> None:
    doctor = unique("dr")
    schedule = await new_session(api, doctor, period="pm")
    patients = [unique("p"), unique("p")]
    for patient in patients:
        assert (await api.book(schedule["id"], patient)).status == 201
    page = await open_page("/console", staff_token("riverside"))
    await page.get_by_role("button", name=f"Suspend {doctor}, Afternoon").click()

    preview = page.locator("#suspend-consequences")
    await preview.wait_for(timeout=WAIT_MS)
    assert "2 booked and 0 awaiting payment" in (await preview.text_content() or "")
    # Nothing changed by the preview.
    seen = await api.call("GET", f"/v1/schedules/{schedule['id']}", token=staff_token("riverside"))
    assert seen.json["status"] == "open"
    await screenshot(page, "console-suspend-preview")

    await page.get_by_label("Reason (shown to patients)").fill("The doctor is ill")
    await page.get_by_role("button", name="Suspend session").click()
    await page.locator("#status").filter(has_text="Suspended").wait_for(timeout=WAIT_MS)
    seen = await api.call("GET", f"/v1/schedules/{schedule['id']}", token=staff_token("riverside"))
    assert seen.json["status"] == "suspended"
    mine = await api.call("GET", "/v1/me/bookings", token=patient_token(patients[0]))
    assert [b["status"] for b in mine.json["bookings"]] == ["cancelled"]
    row = page.locator(f'#fill li[data-schedule="{schedule["id"]}"]')
    await row.filter(has_text="suspended").wait_for(timeout=WAIT_MS)


async def test_a_hospital_administrator_sees_only_its_own_hospital(open_page: Any) -> None:
    page = await open_page("/console", staff_token("northside"))
    await page.locator("#fill li.fill-row").first.wait_for(timeout=WAIT_MS)
    text = await page.locator("main").inner_text()
    # Doctors and departments by name, not by id.
    assert "Dr. Sun Yu" in text and "General practice" in text
    assert "Dr. Chen Wei" not in text and "Cardiology" not in text
    assert await page.locator("#hospital option").count() == 1
    # The page cannot be talked into it either: the server refuses the token elsewhere.
    statuses = await page.evaluate(
        """async (token) => {
            const paths = ["/v1/admin/hospitals/riverside/bookings",
                           "/v1/schedules?hospital_id=riverside"];
            const answers = await Promise.all(paths.map((p) =>
                fetch(p, {headers: {Authorization: "Bearer " + token}})));
            return answers.map((a) => a.status);
        }""",
        staff_token("northside"),
    )
    assert statuses == [403, 403]


async def test_an_automatic_blacklist_entry_shows_the_events_behind_it(
    open_page: Any, api: Client
) -> None:
    rules = "/v1/admin/hospitals/riverside/blacklist-rules"
    staff = staff_token("riverside")
    put = await api.call("PUT", rules, token=staff, json={"max_cancellations": 1})
    assert put.status == 200, put.body
    try:
        patient = unique("p")
        tomorrow = (dt.date.fromisoformat(hospital_today()) + dt.timedelta(days=1)).isoformat()
        schedule = await new_session(api, unique("dr"), visit_date=tomorrow)
        booked = await api.book(schedule["id"], patient)
        assert booked.status == 201, booked.body
        path = f"/v1/bookings/{booked.json['booking']['id']}/cancel"
        cancelled = await api.call("POST", path, token=patient_token(patient))
        assert cancelled.status == 200, cancelled.body
    finally:
        assert (await api.call("DELETE", rules, token=staff)).status == 204

    page = await open_page("/console", staff)
    entry = page.locator("#blacklist li.entry.automatic", has_text=patient)
    await entry.wait_for(timeout=WAIT_MS)
    await entry.locator("summary").click()
    assert "cancelled" in (await entry.locator("details").text_content() or "")
    await screenshot(page, "console-blacklist")


async def test_the_his_sync_preview_changes_nothing_until_applied(
    open_page: Any, api: Client
) -> None:
    external_id = unique("HIS")
    visit_date = (dt.date.fromisoformat(hospital_today()) + dt.timedelta(days=5)).isoformat()
    row = {"department_id": "pediatrics", "visit_date": visit_date, "period": "night"}
    feed = {
        "schedules": [
            {**row, "external_id": external_id, "doctor_id": "dr-zhao", "capacity": 7},
            {**row, "external_id": unique("HIS"), "doctor_id": "dr-nobody", "capacity": 7},
        ]
    }
    page = await open_page("/console", staff_token("riverside"))
    await page.get_by_label("or paste it").fill(json.dumps(feed))
    await page.get_by_role("button", name="Preview changes").click()

    diff = page.locator("#his-diff")
    await diff.wait_for(timeout=WAIT_MS)
    created = diff.locator("tr.his-create")
    assert external_id in (await created.text_content() or "")
    assert "doctor_not_found" in (await diff.locator("tr.his-error").text_content() or "")
    assert await page.locator('#his-counts [data-count="created"]').text_content() == "1"
    assert await page.locator('#his-counts [data-count="errors"]').text_content() == "1"
    await screenshot(page, "console-his-preview")
    assert external_id not in await riverside_external_ids(api, visit_date)

    await page.get_by_role("button", name="Apply these changes").click()
    await page.locator("#status").filter(has_text="The feed is applied").wait_for(timeout=WAIT_MS)
    # Another query than before: the page read before may be answered for a second (API.md).
    assert external_id in await riverside_external_ids(api, visit_date, "&period=night")
    # Applied once: the button waits for the next preview.
    assert await page.get_by_role("button", name="Apply these changes").is_disabled()


async def riverside_external_ids(api: Client, visit_date: str, more: str = "") -> set[str]:
    path = f"/v1/schedules?hospital_id=riverside&from={visit_date}&to={visit_date}{more}"
    answer = await api.call("GET", path, token=staff_token("riverside"))
    assert answer.status == 200, answer.body
    return {s["external_id"] for s in answer.json["schedules"] if s["external_id"]}


async def test_pages_and_their_files_are_served_with_types_and_etags(api: Client) -> None:
    for path, kind in (
        ("/book", "text/html"),
        ("/console", "text/html"),
        ("/web/book.js", "text/javascript"),
        ("/web/style.css", "text/css"),
    ):
        answer = await api.call("GET", path)
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith(kind)
        assert answer.headers["Cache-Control"] == "no-cache"
        again = await api.call("GET", path, headers={"If-None-Match": answer.headers["ETag"]})
        assert again.status == 304
    for missing in ("/web/nothing.js", "/web/book.html", "/web/..%2Fapp.py"):
        answer = await api.call("GET", missing)
        answer.problem(404, "not_found")
