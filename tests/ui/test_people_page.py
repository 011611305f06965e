"""The people page (issue 25 §3), in a real browser: the directory with loads and who is away; an
operator sets someone out of office with a delegate (through the people commands, so the API sees the
same absence), a period that ends before it starts is refused saying why, and "Back now" ends it. At
laptop and phone width."""

from __future__ import annotations

import uuid

from playwright.async_api import Browser, expect

from tests.support.api import Api
from tests.ui.test_console import shot, sign_in


async def test_set_and_end_an_absence(api: Api, browser: Browser, console: str) -> None:
    pool = f"desk_{uuid.uuid4().hex[:6]}"
    away, stand_in = f"pat_{uuid.uuid4().hex[:6]}", f"sam_{uuid.uuid4().hex[:6]}"
    for name, skills in ((away, ["german"]), (stand_in, [])):
        saved = await api.request(
            "PUT", f"/api/v1/people/{name}", json={"roles": [pool], "skills": skills, "max_open": 5}
        )
        assert saved.status_code == 200, saved.text
    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        context = await browser.new_context(viewport={"width": width, "height": height})
        try:
            page = await context.new_page()
            await sign_in(page, console, "operator")
            await page.goto(f"{console}/ui/people?role={pool}")
            await expect(page).to_have_title("People · Trellis")
            await expect(page.locator("[data-person]")).to_have_count(2)
            row = page.locator(f'[data-person="{away}"]')
            await expect(row).to_contain_text("german")
            await expect(row).to_contain_text("0 of 5")

            form = page.locator("[data-absence]")
            await form.locator("select[name=person]").select_option(away)
            await form.locator("select[name=delegate]").select_option(stand_in)
            await form.locator("input[name=ends]").fill("2020-01-01T00:00")
            await form.locator("button[type=submit]").click()
            await expect(page.locator(".flash.error")).to_contain_text("ends_ts must come after starts_ts")

            await page.goto(f"{console}/ui/people?role={pool}")
            form = page.locator("[data-absence]")
            await form.locator("select[name=person]").select_option(away)
            await form.locator("select[name=delegate]").select_option(stand_in)
            await form.locator("input[name=reason]").fill("holiday")
            await form.locator("button[type=submit]").click()
            await expect(page.locator(".flash")).to_contain_text(f"{stand_in} stands in")
            await page.goto(f"{console}/ui/people?role={pool}")
            row = page.locator(f'[data-person="{away}"] [data-away]')
            await expect(row).to_contain_text(f"{stand_in} stands in")
            await expect(row).to_contain_text("holiday")
            people = (await api.request("GET", f"/api/v1/people?role={pool}", role="viewer")).json()
            assert {p["name"]: (p["away"] or {}).get("delegate") for p in people} == {away: stand_in, stand_in: None}
            await shot(page, f"people{suffix}")

            await row.locator("button", has_text="Back now").click()
            await expect(page.locator(".flash")).to_contain_text(f"{away} is back")
            await expect(page.locator(f'[data-person="{away}"] [data-away]')).to_have_text("—")
        finally:
            await context.close()
