"""The optimizer's recommendations in the console (issue 26 §4), in a real browser: a step workflow's
page and a template's analytics page show what the API recommends (the fixed histories of
tests/steps/test_recommendations.py and tests/process/test_recommendations.py), at laptop and phone
width."""

from __future__ import annotations

from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.process.test_recommendations import advised
from tests.steps.test_recommendations import recorded_flow
from tests.support.api import Api
from tests.ui.test_console import shot, sign_in


async def test_pages_show_recommendations(api: Api, engine: AsyncEngine, browser: Browser, console: str) -> None:
    flow = await recorded_flow(api, engine)
    code, _ = await advised(api, engine)
    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        context = await browser.new_context(viewport={"width": width, "height": height})
        try:
            page = await context.new_page()
            await sign_in(page, console, "viewer")
            await page.goto(f"{console}/ui/workflows/{flow}")
            await expect(page).to_have_title(f"{flow} · Trellis")
            card = page.locator("[data-recommendations]")
            await expect(card.locator('[data-recommendation="run_in_parallel"]').first).to_contain_text(
                "Run fetch_customer, fetch_prices in parallel: about 2.0 s saved per run"
            )
            await expect(card.locator('[data-recommendation="failing_step"]')).to_contain_text("503 busy")
            await card.scroll_into_view_if_needed()
            await shot(page, f"workflow-recommendations{suffix}")

            await page.goto(f"{console}/ui/analytics/templates/{code}")
            card = page.locator("[data-recommendations]")
            await expect(card.locator("[data-recommendation]")).to_have_count(5)
            await expect(card.locator('[data-recommendation="transition_never_taken"]')).to_contain_text(
                "No instance went from open to escalated"
            )
            await expect(card.locator("[data-note]")).to_contain_text("too few to call a path out of it unused")
            await card.scroll_into_view_if_needed()
            await shot(page, f"template-recommendations{suffix}")

            await page.goto(f"{console}/ui/analytics")
            await expect(page.locator(f'[data-flow="{flow}"]')).to_have_count(1)
        finally:
            await context.close()
