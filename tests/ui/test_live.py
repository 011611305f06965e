"""Pages update by themselves (issue 22): an instance page follows a transition made over the API, and
a step execution's timeline fills in while it runs, with no reload (a value set on the page's window
survives) and within a few seconds."""

from __future__ import annotations

import uuid

from playwright.async_api import Browser, Page, expect

from tests.support.api import Api
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, finished, unique_name, workflow
from tests.ui.test_console import shot, sign_in

LIVE_MS = 8000  # generous for a loaded CI host; a change normally shows within a second


async def _mark(page: Page) -> None:
    await page.evaluate("window.__notReloaded = true")


async def _not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__notReloaded === true"), "the page was reloaded"


async def test_an_instance_page_follows_a_transition_made_over_the_api(
    api: Api, browser: Browser, console: str
) -> None:
    instance = await api.start("CONST_RES", name="Liveco")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "viewer")
    await page.goto(f"{console}/ui/instances/{instance['instance_id']}")
    await expect(page.locator("[data-current-state]")).to_have_text("lead")
    await page.wait_for_timeout(500)  # the page's stream is open
    await _mark(page)
    assert (await api.transition(instance["instance_id"], 1)).status_code == 200
    await expect(page.locator("[data-current-state]")).to_have_text("site_visit", timeout=LIVE_MS)
    await expect(page.locator("g[data-kind=current] text")).to_have_text("site_visit")
    await _not_reloaded(page)
    await context.close()


async def test_a_step_timeline_fills_in_while_it_runs(
    api: Api, browser: Browser, console: str, webhook_server: WebhookServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    name = unique_name("live_timeline")
    steps = [
        {"name": "first", "tool": "entity.create", "params": {"entity_type": "live_timeline", "name": "first"}},
        {"name": "held", "tool": "http.request", "params": {"url": webhook_server.url(f"/hold/{tag}")}},
        {"name": "last", "tool": "entity.update", "params": {"id": "${first.id}", "status": "done"}},
    ]
    await create(api, workflow(name, steps))
    started = await execute(api, name, {})
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "viewer")
    try:
        await page.goto(f"{console}/ui/executions/{started['id']}")
        await expect(page.locator("tr[data-step=first]")).to_be_visible(timeout=LIVE_MS)
        await page.wait_for_timeout(500)
        await _mark(page)
        await expect(page.locator("tr[data-step=held]")).to_have_count(0)
        webhook_server.release(tag)
        await expect(page.locator("tr[data-step=last]")).to_have_attribute(
            "data-step-status", "completed", timeout=LIVE_MS
        )
        await expect(page.locator("[data-status]")).to_have_text("completed", timeout=LIVE_MS)
        await expect(page.locator("tr[data-step]")).to_have_count(3)
        await _not_reloaded(page)
        await shot(page, "execution-live")
    finally:
        webhook_server.release(tag)
        await context.close()
    assert (await finished(api, started["id"]))["status"] == "completed"


async def test_the_largest_dag_is_never_clipped(api: Api, browser: Browser, console: str) -> None:
    """CONST_RES (15 states, the largest pack): drawn at its own size, the card scrolls sideways to show
    all of it, at laptop and at phone width; 'Fit to width' fits it to the card instead. Either way every
    state box lies inside the drawn graph."""
    instance = await api.start("CONST_RES", name="Wideco")

    async def scroll(page: Page) -> list[int]:
        found = await page.evaluate(
            "(() => { const c = document.querySelector('[data-dag]'); return [c.scrollWidth, c.clientWidth]; })()"
        )
        return [int(n) for n in found]

    async def boxes_inside(page: Page) -> None:
        svg = await page.locator("[data-dag] svg").bounding_box()
        boxes = page.locator("[data-dag] g[data-state]")
        assert svg is not None and await boxes.count() == 15
        for i in range(15):
            box = await boxes.nth(i).bounding_box()
            assert box is not None
            assert svg["x"] - 1 <= box["x"] and box["x"] + box["width"] <= svg["x"] + svg["width"] + 1
            assert svg["y"] - 1 <= box["y"] and box["y"] + box["height"] <= svg["y"] + svg["height"] + 1

    for width, height in ((1280, 900), (390, 844)):
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        await sign_in(page, console, "viewer")
        await page.goto(f"{console}/ui/instances/{instance['instance_id']}")
        wide, shown = await scroll(page)
        assert wide > shown, "the card scrolls to show the graph at its own size"
        await boxes_inside(page)
        await page.locator("[data-dag]").evaluate("c => c.scrollLeft = c.scrollWidth")
        last = await page.locator("[data-dag] g[data-state]").last.bounding_box()
        card = await page.locator("[data-dag]").bounding_box()
        assert last and card and last["x"] + last["width"] <= card["x"] + card["width"] + 1  # scrolled into view
        await page.click("label[for=dag-fit]")
        wide, shown = await scroll(page)
        assert wide <= shown + 1, "fitted, the graph is as wide as its card"
        await boxes_inside(page)
        if width >= 1000:
            await shot(page, "instance-dag-fit")
        await context.close()
