"""Changing runs from the console in a real browser: pause an instance (its page says who and why, the
instance list filters paused ones, a move is refused), resume it; re-run an execution from a step with
edited input; fork a session from a stage."""

from __future__ import annotations

import json

from playwright.async_api import Browser, expect

from tests.support.agents import case, until
from tests.support.agents import start as start_session
from tests.support.api import Api
from tests.support.process import node, template, unique_code
from tests.support.steps import create, execute, finished, unique_name, workflow
from tests.ui.test_console import shot, sign_in
from tests.ui.test_designer import node as canvas_node
from tests.ui.test_designer import open_designer

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}


async def test_pause_and_resume_an_instance_in_the_console(api: Api, browser: Browser, console: str) -> None:
    instance = await api.start("HS_STD", name="Paused Plumbing Co")
    context = await browser.new_context(viewport=LAPTOP)
    page = await context.new_page()
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/instances/{instance['instance_id']}")
    await page.fill("form[data-pause] input[name=reason]", "waiting for the customer's new address")
    await page.get_by_role("button", name="Pause", exact=True).click()
    await expect(page.locator(".flash.note")).to_have_text("Paused.")
    banner = page.locator("[data-paused]")
    await expect(banner).to_contain_text("Paused by operator-user")
    await expect(banner).to_contain_text("waiting for the customer's new address")
    await shot(page, "instance-paused")
    await expect(page.locator("form[action$=transition]")).to_have_count(0)  # no move is offered while paused

    await page.goto(f"{console}/ui")
    await expect(page.locator("[data-figure=paused] .figure")).not_to_have_text("0")
    await page.goto(f"{console}/ui/instances?paused=true&q=Paused+Plumbing")
    rows = page.locator("table[data-list=instance] tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("paused by operator-user")
    await page.set_viewport_size(PHONE)
    await shot(page, "instances-paused-phone")
    await page.set_viewport_size(LAPTOP)

    await page.goto(f"{console}/ui/instances/{instance['instance_id']}")
    await page.get_by_role("button", name="Resume", exact=True).click()
    await expect(page.locator(".flash.note")).to_have_text("Resumed.")
    await expect(page.locator("[data-paused]")).to_have_count(0)
    await page.locator("form[action$=transition] button").first.click()
    await expect(page.locator(".flash.note")).to_contain_text("Moved to")
    await context.close()


async def test_rerun_with_edited_input_and_fork_a_session(api: Api, browser: Browser, console: str) -> None:
    name = unique_name("console_rerun")
    steps = [
        {"name": "first", "tool": "entity.create", "params": {"entity_type": "console_rerun", "name": "first"}},
        {"name": "second", "tool": "entity.create", "params": {"entity_type": "console_rerun", "name": "${input.who}"}},
    ]
    await create(api, workflow(name, steps))
    done = await finished(api, (await execute(api, name, {"who": "Ann"}))["id"])
    assert done["status"] == "completed"
    context = await browser.new_context(viewport=LAPTOP)
    page = await context.new_page()
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/executions/{done['id']}")
    rerun = page.locator("[data-rerun]")
    await rerun.locator("select[name=from_step]").select_option("second")
    await rerun.locator("summary").click()
    await rerun.locator("textarea[name=input]").fill('{"who": "Bea"}')
    await shot(page, "execution-rerun")
    await rerun.get_by_role("button", name="Re-run").click()
    await expect(page.locator(".flash.note")).to_have_text("Re-running from second with edited input.")
    await expect(page.locator("p.sub")).to_contain_text("re-run of")
    again = await finished(api, page.url.rsplit("/", 1)[1])
    assert again["output"]["second"]["name"] == "Bea" and again["output"]["first"] == done["output"]["first"]
    await page.goto(f"{console}/ui/executions/{done['id']}")
    await expect(page.locator("[data-linked] tbody tr")).to_have_count(1)
    bad = page.locator("[data-rerun]")
    await bad.locator("summary").click()
    await bad.locator("textarea[name=input]").fill("{not json")
    await bad.get_by_role("button", name="Re-run").click()
    await expect(page.locator(".flash.error")).to_contain_text("not valid JSON")

    c = case()
    session = await start_session(api, c, agents=["planner", "estimator", "validator", "reporter"])
    assert (await until(api, session["session_id"]))["session_status"] == "completed"
    await page.goto(f"{console}/ui/sessions/{session['session_id']}")
    fork = page.locator("[data-fork]")
    await fork.locator("select[name=from_stage]").select_option("2")
    await page.set_viewport_size(PHONE)
    await shot(page, "session-fork-phone")
    await page.set_viewport_size(LAPTOP)
    await fork.get_by_role("button", name="Fork").click()
    await expect(page.locator(".flash.note")).to_have_text("Forked from stage 2.")
    await expect(page.locator("p.sub")).to_contain_text(f"forked from {session['session_id']}")
    await context.close()


async def test_a_dry_run_from_the_designer(api: Api, browser: Browser, console: str) -> None:
    name = unique_name("designer_dry")
    make = {"tool": "entity.create", "params": {"entity_type": "designer_dry", "name": "x"}}
    await create(api, workflow(name, [{"name": "a", **make}, {"name": "b", **make}]))
    done = await finished(api, (await execute(api, name, {}))["id"])
    assert done["status"] == "completed"
    page, errors = await open_designer(browser, console, f"/ui/designer/workflows/{name}")
    await page.get_by_role("tab", name="JSON").click()
    changed = workflow(name, [{"name": "a", **make}, {"name": "charge", **make}])
    await page.locator("[data-json]").fill(json.dumps({**changed, "enabled": True}))
    await expect(canvas_node(page, "charge")).to_have_count(1)  # the canvas took the edited JSON
    await page.get_by_role("tab", name="Dry run").click()
    await page.locator("[data-panel=dryrun]").get_by_role("button", name="Dry run").click()
    result = page.locator(f"[data-dry-run='{done['id']}']")
    await expect(result).to_contain_text("drops b")
    await expect(result).to_contain_text("needs a stub for charge")
    await page.locator("[data-dry-stubs]").fill('{"charge": {"id": "stub", "name": "x"}}')
    await page.locator("[data-panel=dryrun]").get_by_role("button", name="Dry run").click()
    await expect(result).not_to_contain_text("needs a stub")
    await expect(result).to_contain_text("adds charge")
    await shot(page, "designer-dry-run")
    assert errors == []
    await page.context.close()


async def test_plan_preview_and_start_a_migration_in_the_console(api: Api, browser: Browser, console: str) -> None:
    code = unique_code("UIMIG")
    v1 = [node(0, [], [1]), node(1, [0], [2]), node(2, [1], [3]), node(3, [2], [])]
    v2 = [node(0, [], [1]), node(1, [0], [3]), node(3, [1], [])]  # state 2 is gone
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, v1))).status_code == 201
    ids = [(await api.start(code, name=f"mig-{i}"))["instance_id"] for i in range(3)]
    assert (await api.transition(ids[0], 1)).status_code == 200
    for state in (1, 2):
        assert (await api.transition(ids[1], state)).status_code == 200
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, v2))).status_code == 201

    context = await browser.new_context(viewport=LAPTOP)
    page = await context.new_page()
    await sign_in(page, console, "admin")
    await page.goto(f"{console}/ui/templates")
    await page.locator(f"a[href='/ui/migrations?template={code}']").first.click()
    await expect(page.locator("input[name=from]")).to_have_value("1")
    await expect(page.locator("input[name=to]")).to_have_value("2")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("[data-totals]")).to_contain_text("2 migrate")
    await expect(page.locator("[data-totals]")).to_contain_text("1 refused: unmapped state")
    await expect(page.locator("tr[data-item=refused]")).to_contain_text("no state of the same id or name")
    await shot(page, "migration-preview")
    await page.get_by_role("button", name="Migrate 2 instances").click()
    await expect(page.locator(".flash.note")).to_contain_text("Migration started")
    for _ in range(60):
        if (await page.locator("[data-status]").inner_text()).strip() == "completed":
            break
        await page.wait_for_timeout(500)
        await page.reload()
    await expect(page.locator("[data-status]")).to_have_text("completed")
    await expect(page.locator("[data-figure=migrated] .figure")).to_have_text("2")
    await expect(page.locator("[data-refused]")).to_contain_text("no state of the same id or name")
    await page.set_viewport_size(PHONE)
    await shot(page, "migration-phone")
    view = (await api.request("GET", f"/api/v1/workflow-instance/{ids[0]}")).json()
    assert view["template_version"] == 2
    await page.goto(f"{console}/ui/migrations?template={code}&from=9&to=2&preview=1")
    await expect(page.locator("[data-problem]")).to_contain_text("has no version 9")
    await context.close()

    viewer = await browser.new_context(viewport=LAPTOP)
    page = await viewer.new_page()
    await sign_in(page, console, "operator")
    response = await page.goto(f"{console}/ui/migrations")
    assert response is not None and response.status == 403
    await viewer.close()
