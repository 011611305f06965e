"""What the third attack run found in the console, closed: a sign-in form token any value could stand in
for, the API key itself as the cookie (still valid after sign-out), flash text taken from the query, pages
without a Content-Security-Policy, and the API docs loading scripts from a CDN."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, expect

from api.headers import CONSOLE_POLICY
from tests.support.api import TOKENS


def _csrf(page: str) -> str:
    return page.split('name="csrf" value="')[1].split('"')[0]


async def test_sign_in_takes_only_a_form_token_this_server_issued(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as client:
        made_up = "attacker-chosen-value"
        client.cookies.set("trellis_login", made_up, path="/ui")
        planted = await client.post("/ui/login", data={"csrf": made_up, "key": TOKENS["operator"]})
        assert planted.status_code == 303 and planted.headers["location"].startswith("/ui/login?error=")
        assert "trellis_session" not in planted.headers.get("set-cookie", "")
        # A real form posted from another origin (another port of this host) is refused too.
        form = await client.get("/ui/login")
        cross = await client.post(
            "/ui/login",
            data={"csrf": _csrf(form.text), "key": TOKENS["operator"]},
            headers={"Origin": "http://127.0.0.1:1"},
        )
        assert cross.headers["location"].startswith("/ui/login?error=")
        same = await client.post("/ui/login", data={"csrf": _csrf(form.text), "key": TOKENS["operator"]})
        assert same.headers["location"] == "/ui" and "trellis_session=" in same.headers["set-cookie"]


async def test_sign_out_ends_the_session_for_good(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as client:
        form = await client.get("/ui/login")
        await client.post("/ui/login", data={"csrf": _csrf(form.text), "key": TOKENS["approver"]})
        stolen = client.cookies.get("trellis_session")
        assert stolen
        inbox = await client.get("/ui/inbox")
        assert inbox.status_code == 200
        out = await client.post("/ui/logout", data={"csrf": _csrf(inbox.text)})
        assert out.status_code == 303
    async with httpx.AsyncClient(base_url=console) as replay:
        replay.cookies.set("trellis_session", stolen, path="/ui")
        again = await replay.get("/ui/inbox")
        assert again.status_code == 303 and again.headers["location"] == "/ui/login"


async def test_flash_messages_come_only_from_the_server(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as client:
        form = await client.get("/ui/login")
        await client.post("/ui/login", data={"csrf": _csrf(form.text), "key": TOKENS["viewer"]})
        bait = "Your account is locked. Call +1-555-0100 to unlock it."
        page = await client.get("/ui/inbox", params={"error": bait, "note": bait})
        assert page.status_code == 200 and bait not in page.text
        forged = await client.get("/ui/inbox", params={"error": bait, "sig": "0" * 64})
        assert bait not in forged.text


async def test_pages_and_answers_carry_security_headers(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as client:
        login = await client.get("/ui/login")
        assert login.headers["content-security-policy"] == CONSOLE_POLICY
        assert "frame-ancestors 'none'" in CONSOLE_POLICY and "script-src 'self';" in CONSOLE_POLICY
        assert "unsafe-inline" not in CONSOLE_POLICY
        assert login.headers["x-content-type-options"] == "nosniff"
        assert login.headers["cache-control"] == "no-store"
        api = await client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {TOKENS['viewer']}"})
        assert api.headers["content-type"].startswith("application/json")
        assert api.headers["x-content-type-options"] == "nosniff"
        refused = await client.get("/api/v1/inbox")
        assert refused.status_code == 401 and refused.headers["x-content-type-options"] == "nosniff"


async def test_the_console_holds_its_policy_in_a_browser(browser: Browser, console: str) -> None:
    """No violation is reported while signing in and reading the inbox: the stylesheet is a file, and no
    style or script is inline."""
    page = await browser.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    await page.goto(f"{console}/ui/login")
    await page.fill("#key", TOKENS["viewer"])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{console}/ui")
    background = await page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
    assert background == "rgb(28, 36, 48)"  # the stylesheet applied
    assert violations == [], violations
    await page.close()


async def test_the_api_docs_are_served_from_trellis_and_work_offline(browser: Browser, console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as client:
        html = (await client.get("/docs")).text
        assert "cdn" not in html.lower() and "https://" not in html
        assert "<script>" not in html  # scripts are files
        assert (await client.get("/docs/assets/swagger-ui-bundle.js")).status_code == 200
        assert (await client.get("/redoc")).status_code == 404
    page = await browser.new_page()
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(console) else None)
    await page.goto(f"{console}/docs")
    await expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
    assert outside == [], outside
    await page.close()
