"""Debian's Chromium driven by Playwright's Python package (which downloads no browser of
its own): the flags a container needs, and a skip that says what to install."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium as root in a container: no sandbox, no GPU, no shared memory, nothing fetched
# from the network behind the test's back.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def async_playwright() -> Any:
    """Playwright's entry point, or a skip naming what is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (make test does, as root)"
        )
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: pip install 'slotrush[test]'")
    return async_playwright
