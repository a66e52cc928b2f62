"""CORS as a real browser sees it: headless Chromium loads a page from one origin, and the
page calls the API on another (both on loopback, different ports). From an allowed origin
it reads the public hospital list and, with a token (so after a preflight), a schedule
list; from an origin the server does not name, the browser itself refuses both answers.

Needs Debian's Chromium (`apt-get install chromium`; `make test` installs it when run as
root) and Playwright's Python package (the `test` extra), which drives that browser rather
than downloading one of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.http import chromium
from tests.http.conftest import Client, ServeFn, patient_token

# The front end: what a page of another origin does with the API.
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>slotrush front end</title></head>
<body><pre id="out">loading</pre>
<script>
async function read(url, headers) {
  try {
    const answer = await fetch(url, {headers: headers});
    return {status: answer.status, etag: answer.headers.get("ETag"), body: await answer.json()};
  } catch (error) {
    return {blocked: String(error)};
  }
}
async function browse(api, token, hospital) {
  const seen = {
    hospitals: await read(api + "/v1/hospitals?limit=500"),
    schedules: await read(api + "/v1/schedules?hospital_id=" + hospital,
                          {"Authorization": "Bearer " + token}),
  };
  document.getElementById("out").textContent = JSON.stringify(seen);
  return seen;
}
</script></body></html>
"""


@pytest.fixture
async def page_server() -> AsyncIterator[int]:
    """The front end's own server, on a port of its own; its port."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    yield port
    await runner.cleanup()


async def test_a_page_of_an_allowed_origin_reads_the_api_and_another_is_refused(
    serve: ServeFn, session: aiohttp.ClientSession, page_server: int, tmp_path: Path
) -> None:
    async_playwright = chromium.async_playwright()
    # The same page server is two origins: 127.0.0.1 is allowed, localhost is not.
    allowed = f"http://127.0.0.1:{page_server}"
    refused = f"http://localhost:{page_server}"
    served = await serve("--strategy", "pg-pessimistic", env={"SLOTRUSH_CORS_ORIGINS": allowed})
    api = Client(session, served.url)
    schedule = await api.create_schedule()
    hospital = schedule["hospital_id"]
    token = patient_token("p-browser")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium.CHROMIUM,
            headless=True,
            args=chromium.CHROMIUM_FLAGS,
        )
        try:
            page = await browser.new_page()
            seen = {}
            for origin in (allowed, refused):
                await page.goto(origin + "/")
                seen[origin] = await page.evaluate(
                    "([api, token, hospital]) => browse(api, token, hospital)",
                    [served.url, token, hospital],
                )
        finally:
            await browser.close()

    mine = seen[allowed]
    assert mine["hospitals"].get("status") == 200, mine
    assert hospital in [h["id"] for h in mine["hospitals"]["body"]["hospitals"]]
    assert mine["hospitals"]["etag"], "ETag is exposed to the page"
    assert mine["schedules"].get("status") == 200, mine
    assert [s["id"] for s in mine["schedules"]["body"]["schedules"]] == [schedule["id"]]
    theirs = seen[refused]
    assert "blocked" in theirs["hospitals"] and "blocked" in theirs["schedules"], theirs
