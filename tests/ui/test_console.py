"""The console in a real browser: sign in with a key, see the approval gate in the inbox, approve it and
see the instance's next state, move the instance on, work a work item; the cookie and CSRF rules; a
phone-sized screen. TRELLIS_SCREENSHOTS=<folder> saves the pages (the README's screenshots)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

from tests.support.api import TOKENS, Api
from tests.support.work import customer, demo

SHOTS = os.environ.get("TRELLIS_SCREENSHOTS")


async def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def sign_in(page: Page, base: str, role: str) -> None:
    await page.goto(f"{base}/ui")
    await expect(page).to_have_url(f"{base}/ui/login")
    await page.fill("#key", TOKENS[role])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/ui")
    await page.goto(f"{base}/ui/inbox")


async def test_approve_in_the_inbox_then_move_the_instance_on(api: Api, browser: Browser, console: str) -> None:
    instance = await api.start("CONST_RES", name="Console Build Co")
    for state in (1, 2, 3, 4):
        assert (await api.transition(instance["instance_id"], state)).status_code == 200
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "approver")
    card = page.locator(f"[data-item='approval:{instance['instance_id']}:4']")
    await expect(card).to_contain_text("Console Build Co")
    await expect(card.locator(".badge")).to_contain_text("Critical")
    await shot(page, "inbox")

    await card.locator("input[name=comment]").fill("countersigned")
    await card.locator("button[value=approve]").click()
    await expect(page).to_have_url(re.compile(re.escape(f"{console}/ui/instances/{instance['instance_id']}?note=")))
    await expect(page.locator(".flash.note")).to_have_text("Done: approve.")
    await expect(page.locator("[data-approval]")).to_have_count(0)
    next_state = page.locator("button[name=to_state_id]").first
    await expect(next_state).to_be_visible()
    next_name = (await next_state.inner_text()).strip()
    await expect(page.locator("g[data-kind=next]")).not_to_have_count(0)

    # An approver may not move instances: the page says so and nothing moves.
    await next_state.click()
    await expect(page.locator(".flash.error")).to_contain_text("needs one of: admin, operator")
    await shot(page, "instance-refused")
    await page.click("text=Sign out")
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/instances/{instance['instance_id']}")
    await page.locator("button[name=to_state_id]").first.click()
    await expect(page.locator("[data-current-state]")).to_have_text(next_name)
    await expect(page.locator("g[data-kind=current] text")).to_have_text(next_name[:20])
    await shot(page, "instance")
    await page.set_viewport_size({"width": 390, "height": 844})
    await shot(page, "instance-phone")
    await context.close()


async def test_a_work_item_is_worked_from_its_page(api: Api, browser: Browser, console: str) -> None:
    entity = await customer(api, revenue_impact_tier=4)
    item = (await demo(api, entity, "operator-user"))[1]
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "operator")
    await page.locator(f"[data-item='work:{item['id']}'] .title a").click()
    await expect(page).to_have_url(f"{console}/ui/work/{item['id']}")
    await page.click("button[value=start]")
    await expect(page.locator("[data-status]")).to_have_text("underway")
    await shot(page, "work-item")
    await page.fill("input[name=days]", "10")
    await page.click("text=Snooze")
    await expect(page.locator("[data-status]")).to_have_text("snoozed")
    await expect(page.locator(".badge")).to_contain_text("Low · 390")

    # A phone: the inbox fits the screen's width.
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = await phone.new_page()
    await sign_in(small, console, "operator")
    overflow = await small.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the inbox is {overflow}px wider than a phone"
    await shot(small, "inbox-phone")
    await phone.close()
    await context.close()


async def test_the_session_cookie_and_the_forms_are_protected(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as client:
        login = await client.get("/ui/login")
        csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
        signed = await client.post("/ui/login", data={"csrf": csrf, "key": TOKENS["operator"]})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "trellis_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert TOKENS["operator"] not in cookie  # the browser holds a session, never the API key
        # A form without the page's CSRF token is refused, whatever the cookie.
        forged = await client.post(
            "/ui/inbox/work:00000000-0000-0000-0000-000000000001/decision", data={"action": "start"}
        )
        assert forged.status_code == 403 and "stale" in forged.json()["detail"]
        # A wrong key does not sign in.
        login = await client.get("/ui/login")
        csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
        refused = await client.post("/ui/login", data={"csrf": csrf, "key": "not-a-key-at-all-000"})
        assert refused.headers["location"].startswith("/ui/login?error=")
        assert "That API key is not known." in (await client.get(refused.headers["location"])).text
    async with httpx.AsyncClient(base_url=console) as stranger:
        assert (await stranger.get("/ui/inbox")).headers["location"] == "/ui/login"
