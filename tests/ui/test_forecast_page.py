"""The forecast in the console (issue 26), in a real browser: the instance page shows when the instance
will likely finish, its chance of success and of meeting its deadline (the toy DAG's hand-computed
figures, tests/process/test_forecast.py), says when the forecast is uncertain and why, and the
instance list sorts by risk after the forecast watch ran."""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.process.test_forecast import toy, toy_running
from tests.support.api import Api
from tests.support.process import insert_history
from tests.ui.test_console import shot, sign_in


async def test_the_instance_page_and_list_show_the_forecast(
    api: Api, engine: AsyncEngine, browser: Browser, console: str
) -> None:
    code, now, fresh, later = await toy_running(api, engine, sla_days=2.5, at_risk_below=0.4)
    thin_code = await toy(api)
    [thin] = await insert_history(engine, thin_code, [([(0, now - timedelta(hours=12))], "active")])
    assert (await api.request("POST", "/api/v1/analytics/forecast-watch", role="operator")).status_code == 200

    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        context = await browser.new_context(viewport={"width": width, "height": height})
        try:  # an open page keeps its live-update stream open: close it, or the server cannot stop
            await check(await context.new_page(), console, code, (fresh, later, thin), suffix)
        finally:
            await context.close()


async def check(page: Page, console: str, code: str, ids: tuple[str, str, str], suffix: str) -> None:
    fresh, later, thin = ids
    await sign_in(page, console, "viewer")
    await page.goto(f"{console}/ui/instances/{later}")
    card = page.locator("[data-forecast]")
    await expect(card.locator("[data-remaining]")).to_have_text("36.0 h")
    await expect(card.locator("[data-success]")).to_have_text("67%")
    await expect(card.locator("[data-on-time]")).to_have_text("33%")
    await expect(card.locator("[data-uncertain]")).to_have_count(0)
    await shot(page, f"instance-forecast{suffix}")

    await page.goto(f"{console}/ui/instances/{thin}")
    await expect(page.locator("[data-forecast] [data-uncertain]")).to_have_text("uncertain")
    await expect(page.locator("[data-forecast] .reasons")).to_contain_text("'A': 0 recorded stays")

    # Riskiest first: the one 1.5 days in (2/3 late) above the fresh one (62/123 late).
    await page.goto(f"{console}/ui/instances?template={code}&status=active&sort=risk")
    rows = page.locator("table[data-list=instance] tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("67% late")
    await expect(rows.nth(1)).to_contain_text("50% late")
    assert later[:8] in (await rows.nth(0).inner_text()) and fresh[:8] in (await rows.nth(1).inner_text())
    await shot(page, f"instances-by-risk{suffix}")
