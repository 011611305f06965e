"""The work queue page (seed 001, phase 2E/2F): filter it, then snooze a selection at once, confirmed
first and answered item by item; an item someone else owns is reported as not changed (issue 22)."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Browser, expect

from tests.support.api import Api
from tests.support.work import customer, demo
from tests.ui.test_console import shot, sign_in
from tests.ui.test_lists import _sign_in


async def test_a_bulk_snooze_on_the_queue(api: Api, browser: Browser, console: str) -> None:
    entity = await customer(api, revenue_impact_tier=4)
    mine = await demo(api, entity, "operator-user")
    others = await demo(api, await customer(api, revenue_impact_tier=4), "someone-else")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/queue?label=")
    for item in mine[:2]:
        await expect(page.locator(f"tr[data-row='{item['id']}']")).to_be_visible()
    await expect(page.locator(f"tr[data-row='{others[0]['id']}']")).to_have_count(0)  # not theirs to see
    await shot(page, "queue")

    for item in mine[:2]:
        await page.locator(f"tr[data-row='{item['id']}'] input[type=checkbox]").check()
    await page.select_option("select[name=days]", "5")
    await page.click("button[value=snooze]")
    confirm = page.locator("[data-confirm]")
    await expect(page.locator("h1")).to_have_text("Snooze for 5 days: 2 items?")
    await expect(confirm.locator("li")).to_have_count(2)
    await confirm.locator("button[type=submit]").click()
    results = page.locator("[data-bulk-results]")
    await expect(results.locator(".title")).to_have_text("Snooze for 5 days: 2 of 2 changed")
    for item in mine[:2]:
        await expect(results.locator(f"tr[data-result='{item['id']}']")).to_contain_text("snoozed until")
    await page.goto(f"{console}/ui/queue?status=snoozed")
    for item in mine[:2]:
        await expect(page.locator(f"tr[data-row='{item['id']}']")).to_contain_text("snoozed until")
    await context.close()


async def test_an_item_of_someone_else_is_reported_not_changed(api: Api, browser: Browser, console: str) -> None:
    mine = await demo(api, await customer(api, revenue_impact_tier=2), "operator-user")
    theirs = await demo(api, await customer(api, revenue_impact_tier=2), "someone-else")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/queue")
    await page.locator(f"tr[data-row='{mine[0]['id']}'] input[type=checkbox]").check()
    await page.click("button[value=skip]")  # no reason given
    await expect(page.locator(".flash.error")).to_have_text("Skipping needs a reason.")
    await context.close()

    # A selection naming another's item (a crafted post: the page never lists it) changes only one's own.
    async with httpx.AsyncClient(base_url=console) as http:
        await _sign_in(http, "operator")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', (await http.get("/ui/queue")).text)
        assert csrf is not None
        answer = await http.post(
            "/ui/queue/bulk",
            data={
                "csrf": csrf.group(1),
                "item": [mine[0]["id"], theirs[0]["id"]],
                "action": "skip",
                "reason": "duplicate",
                "confirmed": "1",
            },
            headers={"origin": console},
        )
    assert answer.status_code == 200
    assert "Skip, because: duplicate: 1 of 2 changed" in answer.text
    refused = re.search(rf"data-result=\"{theirs[0]['id']}\".*?</tr>", answer.text, re.S)
    assert refused is not None and "only they or an admin may change it" in refused.group(0)


async def test_a_bulk_reassignment_confirmed_and_recorded(api: Api, browser: Browser, console: str) -> None:
    """Reassign from the console (issue 25): the selection goes to another person, confirmed first, each
    item answered, and the change recorded with who and why."""
    items = await demo(api, await customer(api, revenue_impact_tier=3), "operator-user")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/queue?label=")
    for item in items[:2]:
        await page.locator(f"tr[data-row='{item['id']}'] input[type=checkbox]").check()
    await page.click("button[value=reassign]")
    await expect(page.locator(".flash.error")).to_contain_text("and why")  # no reason: nothing moves
    for item in items[:2]:
        await page.locator(f"tr[data-row='{item['id']}'] input[type=checkbox]").check()
    await page.select_option("select[name=to]", "bob")
    await page.fill("input[name=reason]", "bob covers this region")
    await page.click("button[value=reassign]")
    await expect(page.locator("h1")).to_have_text("Reassign 2 items to bob, because: bob covers this region?")
    await shot(page, "queue-reassign-confirm")
    await page.locator("[data-confirm] button[type=submit]").click()
    results = page.locator("[data-bulk-results]")
    await expect(results.locator(".title")).to_have_text("Reassign to bob: 2 of 2 moved")
    await expect(results.locator(f"tr[data-result='{items[0]['id']}']")).to_contain_text("now with bob")
    await context.close()
    log = (await api.request("GET", f"/api/v1/assignments/changes?item=work:{items[0]['id']}", role="viewer")).json()
    assert [(c["to_assignee"], c["actor"], c["reason"], c["how"]) for c in log] == [
        ("bob", "operator-user", "bob covers this region", "reassign")
    ]
