"""The console's lists in a real browser: filter, search and page through them, and a bad filter or a
tampered page link answered with a message (issue 22)."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import Browser, expect
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.process.tables import GraphData
from tests.support.api import TOKENS, Api
from tests.ui.test_console import shot, sign_in


async def test_the_instance_list_filters_searches_and_pages(api: Api, browser: Browser, console: str) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [f"Listco {tag} {n}" for n in range(3)]
    started = [await api.start("CONST_RES", name=name) for name in names]
    assert (await api.transition(started[0]["instance_id"], 1)).status_code == 200
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "viewer")

    await page.goto(f"{console}/ui/instances")
    await page.fill("input[name=q]", f"listco {tag}")  # a prefix of the customer's name, any case
    await page.select_option("select[name=template]", "CONST_RES")
    await page.click("form.filters button[type=submit]")
    rows = page.locator("table[data-list=instance] tbody tr")
    await expect(rows).to_have_count(3)
    await expect(page.locator(".sub")).to_contain_text("3 instances match")
    # Newest first; the latest change first puts the moved one on top.
    await expect(rows.first).to_contain_text(names[2])
    await page.select_option("select[name=sort]", "updated")
    await page.click("form.filters button[type=submit]")
    await expect(rows.first).to_contain_text(names[0])
    await shot(page, "instances")

    # Keyset pages of two keep the filters.
    await page.goto(f"{console}/ui/instances?q=Listco+{tag}&limit=2")
    await expect(rows).to_have_count(2)
    await page.click("a[rel=next]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(names[0])
    assert f"q=Listco+{tag}" in page.url and "cursor=" in page.url
    await expect(page.locator("a[rel=next]")).to_have_count(0)

    # By id, and a filter that matches nothing.
    await page.goto(f"{console}/ui/instances?q={started[1]['instance_id']}")
    await expect(rows).to_have_count(1)
    await rows.first.locator("a").click()
    await expect(page).to_have_url(f"{console}/ui/instances/{started[1]['instance_id']}")
    await page.goto(f"{console}/ui/instances?q=Listco+{tag}&status=completed")
    await expect(page.locator(".empty")).to_contain_text("No instances match these filters")
    await context.close()


async def test_a_bad_filter_or_a_tampered_page_link_is_a_message(api: Api, console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as http:
        await _sign_in(http)
        bad = await http.get("/ui/instances?status=bogus")
        assert bad.status_code == 422 and "status" in bad.text
        stale = await http.get("/ui/instances?cursor=bm90LWEtY3Vyc29y")
        assert stale.status_code == 422 and "start again from the first page" in stale.text


async def _sign_in(http: httpx.AsyncClient, role: str = "viewer") -> None:
    """A console session on the client, signed in through the form as a browser would."""
    form = await http.get("/ui/login")  # sets the login cookie on the client
    token = form.cookies["trellis_login"]
    signed = await http.post(
        "/ui/login", data={"csrf": token, "key": TOKENS[role]}, headers={"origin": str(http.base_url).rstrip("/")}
    )
    assert signed.status_code == 303, signed.text


async def test_home_counts_link_to_their_lists(api: Api, browser: Browser, console: str, engine: AsyncEngine) -> None:
    tag = uuid.uuid4().hex[:6]
    stuck = await api.start("CONST_RES", name=f"Stuckco {tag}")
    fresh = await api.start("CONST_RES", name=f"Freshco {tag}")
    # In 'lead' (expected 3 days) since 30 days ago, as far as the projection knows.
    async with engine.begin() as conn:
        await conn.execute(
            update(GraphData)
            .where(GraphData.id == uuid.UUID(stuck["instance_id"]))
            .values(updated_ts=datetime.now(UTC) - timedelta(days=30))
        )
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "viewer")
    await page.goto(f"{console}/ui")
    tile = page.locator("[data-figure=stuck]")
    assert int(await tile.locator(".figure").inner_text()) >= 1
    await expect(page.locator("tr[data-template=CONST_RES]")).to_be_visible()
    await shot(page, "home")
    await tile.locator("a").click()
    await page.fill("input[name=q]", f"stuckco {tag}")
    await page.click("form.filters button[type=submit]")
    rows = page.locator("table[data-list=instance] tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("td.warn")).to_contain_text("over by 27")
    await page.fill("input[name=q]", f"freshco {tag}")
    await page.click("form.filters button[type=submit]")
    await expect(page.locator(".empty")).to_be_visible()  # not stuck: filtered out
    assert fresh["instance_id"]
    await context.close()


async def test_each_list_filters_and_pages(api: Api, console: str) -> None:
    """Executions, rules, workflows and the queue: a filter narrows the list, and pages of one row each
    lead by their Next links to different rows with the filter kept."""
    from tests.support.automation import create_rule, unique_type
    from tests.support.steps import create, execute, finished, unique_name, workflow
    from tests.support.work import customer, demo

    name = unique_name("paged")
    await create(
        api, workflow(name, [{"name": "one", "tool": "entity.create", "params": {"entity_type": "paged", "name": "x"}}])
    )
    for _ in range(2):
        await finished(api, (await execute(api, name, {}))["id"])
    kind = unique_type("paged_rule")
    for n in range(2):
        await create_rule(api, kind, [{"type": "update_field", "field": "n", "value": n}], workflow_name=f"paged {n}")
    await demo(api, await customer(api, revenue_impact_tier=3), "operator-user")

    async with httpx.AsyncClient(base_url=console) as http:
        await _sign_in(http, "admin")
        for path, narrowing, nothing in [
            ("/ui/executions", f"q={name}", "q=no_such_workflow_at_all"),
            ("/ui/rules", f"entity_type={kind}", "entity_type=no_such_type"),
            ("/ui/workflows", "enabled=yes", None),
            ("/ui/queue", "assignee=operator-user", "assignee=nobody-at-all"),
        ]:
            first = await http.get(f"{path}?{narrowing}&limit=1")
            assert first.status_code == 200, (path, first.text[:300])
            rows = re.findall(r'data-row="([^"]+)"', first.text)
            assert len(rows) == 1, path
            following = re.search(r'href="([^"]+)" rel="next"', first.text)
            assert following is not None, f"{path}: no next page"
            link = html.unescape(following.group(1))
            assert narrowing.split("=")[0] in link and "cursor=" in link, link
            second = await http.get(link)
            assert second.status_code == 200
            assert re.findall(r'data-row="([^"]+)"', second.text) != rows, f"{path}: the next page repeats the first"
            if nothing is not None:
                empty = await http.get(f"{path}?{nothing}")
                assert empty.status_code == 200 and 'class="empty"' in empty.text, path
