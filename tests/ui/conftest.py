"""The console served over HTTP for a real browser: Playwright driving Debian's chromium (installed by
this setup when missing: Playwright's own browser download cannot be reached from these machines)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from api.main import create_app
from scripts.browser import CHROMIUM_FLAGS, BrowserMissing
from scripts.browser import chromium as browser_path
from tests.support.api import make_settings
from tests.support.served import serve


def chromium() -> str:
    try:
        return browser_path()
    except BrowserMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
async def console(postgres_url: str, temporal_address: str, task_queue: str, worker: None) -> AsyncIterator[str]:
    """The API (and its console) on the session's worker and database, served on 127.0.0.1."""
    async with serve(create_app(make_settings(postgres_url, temporal_address, task_queue))) as url:
        yield url
