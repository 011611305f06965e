"""The console served over HTTP for a real browser: Playwright driving Debian's chromium (installed by
this setup when missing: Playwright's own browser download cannot be reached from these machines)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from api.main import create_app
from tests.support.api import make_settings
from tests.support.served import serve

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Debian's chromium, installed with apt when missing."""
    found = shutil.which("chromium")
    if found is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        for command in ([*sudo, "apt-get", "update", "-q"], [*sudo, "apt-get", "install", "-y", "-q", "chromium"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                pytest.fail(
                    f"the browser tests need Debian's chromium; `{' '.join(command)}` failed: {done.stderr[-2000:]}"
                )
        found = shutil.which("chromium")
    assert found, "chromium is not on PATH after installing it"
    return found


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
