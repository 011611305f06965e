"""Run pages and operator actions in a real browser: a step execution's timeline, retry from a step
and cancel from the console, the execution list's filters, every list page answering, and a viewer
who sees no action and is refused when posting one anyway (issue 22)."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.async_api import Browser, Page, expect

from tests.support.api import Api
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, finished, unique_name, workflow
from tests.ui.test_console import shot, sign_in
from tests.ui.test_lists import _sign_in


async def _until_status(page: Page, status: str, tries: int = 60) -> None:
    """Reload until the page shows the status (live updates are tested on their own)."""
    for _ in range(tries):
        if (await page.locator("[data-status]").inner_text()).strip() == status:
            return
        await page.wait_for_timeout(500)
        await page.reload()
    await expect(page.locator("[data-status]")).to_have_text(status)


async def test_retry_from_a_step_in_the_console(
    api: Api, browser: Browser, console: str, webhook_server: WebhookServer
) -> None:
    path = f"/sync/{uuid.uuid4().hex[:8]}"
    webhook_server.respond(path, {"synced": True}, [500, 200])
    name = unique_name("console_retry")
    steps = [
        {"name": "made", "tool": "entity.create", "params": {"entity_type": "console_retry", "name": "${input.label}"}},
        {"name": "sync", "tool": "http.request", "params": {"url": webhook_server.url(path)}},
        {"name": "done", "tool": "entity.update", "params": {"id": "${made.id}", "status": "synced"}},
    ]
    await create(api, workflow(name, steps))
    failed = await finished(api, (await execute(api, name, {"label": "retry me"}))["id"])
    assert failed["status"] == "failed"

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/executions?q={name}&status=failed")
    rows = page.locator("table[data-list=execution] tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("step 'sync'")  # why it failed
    await rows.first.locator("a").click()
    await expect(page.locator("tr[data-step=made]")).to_have_attribute("data-step-status", "completed")
    await expect(page.locator("tr[data-step=sync]")).to_have_attribute("data-step-status", "failed")
    await expect(page.locator("[data-execution-error]")).to_contain_text("sync")
    await shot(page, "execution-failed")
    await expect(page.locator("select[name=from_step]")).to_have_value("sync")
    await page.get_by_role("button", name="Re-run", exact=True).click()
    await expect(page.locator(".flash.note")).to_have_text("Re-running from sync.")
    assert failed["id"] not in page.url
    await _until_status(page, "completed")
    await expect(page.locator("tr[data-step]")).to_have_count(3)  # made reused, sync and done run
    await expect(page.locator("tr[data-step=done]")).to_have_attribute("data-step-status", "completed")
    await shot(page, "execution")
    await page.set_viewport_size({"width": 390, "height": 844})
    await shot(page, "execution-phone")
    await context.close()


async def test_cancel_a_running_execution_in_the_console(
    api: Api, browser: Browser, console: str, webhook_server: WebhookServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    name = unique_name("console_cancel")
    steps = [{"name": "wait", "tool": "http.request", "params": {"url": webhook_server.url(f"/hold/{tag}")}}]
    await create(api, workflow(name, steps))
    started = await execute(api, name, {})
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "operator")
    try:
        await page.goto(f"{console}/ui/executions/{started['id']}")
        await _until_status(page, "running")
        await page.click("text=Cancel execution")
        await expect(page.locator(".flash.note")).to_contain_text("Cancelling")
        await _until_status(page, "cancelled")
        await expect(page.locator("text=Cancel execution")).to_have_count(0)
    finally:
        webhook_server.release(tag)
        await context.close()


async def test_a_viewer_sees_no_action_and_is_refused_posting_one(
    api: Api, browser: Browser, console: str, webhook_server: WebhookServer
) -> None:
    path = f"/refuse/{uuid.uuid4().hex[:8]}"
    webhook_server.respond(path, {}, [500])
    name = unique_name("console_viewer")
    await create(
        api, workflow(name, [{"name": "sync", "tool": "http.request", "params": {"url": webhook_server.url(path)}}])
    )
    failed = await finished(api, (await execute(api, name, {}))["id"])
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "viewer")
    await page.goto(f"{console}/ui/executions/{failed['id']}")
    await expect(page.locator("tr[data-step=sync]")).to_be_visible()
    await expect(page.locator("form[action$=retry], form[action$=cancel]")).to_have_count(0)
    await context.close()

    async with httpx.AsyncClient(base_url=console) as http:
        await _sign_in(http, "viewer")
        shown = await http.get(f"/ui/executions/{failed['id']}")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', shown.text)
        assert csrf is not None
        posted = await http.post(
            f"/ui/executions/{failed['id']}/retry",
            data={"csrf": csrf.group(1), "from_step": "sync"},
            headers={"origin": console},
        )
        assert posted.status_code == 303
        assert (
            "may+not+re-run+executions" in posted.headers["location"]
            or "may%20not%20re-run" in posted.headers["location"]
        )
        redeliver = await http.post(
            f"/ui/dead-letters/{uuid.uuid4()}/redeliver", data={"csrf": csrf.group(1)}, headers={"origin": console}
        )
        assert redeliver.status_code == 303 and "redeliver" in redeliver.headers["location"]


async def test_every_list_page_answers(api: Api, console: str) -> None:
    kind = unique_type("console_rule")
    rule = await create_rule(api, kind, [{"type": "update_field", "field": "status", "value": "seen"}])
    await create_entity(api, kind, "Rulepage Co")
    await finished_executions(api, rule["id"], 1)
    async with httpx.AsyncClient(base_url=console) as http:
        await _sign_in(http, "admin")
        for path, marker in [
            ("/ui", "Active instances by template"),
            ("/ui/executions", "Step executions"),
            ("/ui/sessions", "Agent sessions"),
            ("/ui/rules", "Automation rules"),
            ("/ui/dead-letters?open=1", "Webhook dead letters"),
            ("/ui/breakers", "Circuit breakers"),
            ("/ui/templates?versions=1", "CONST_RES"),
            ("/ui/workflows", "Step workflows"),
            (f"/ui/rules?trigger=create&entity_type={kind}", f"/ui/rules/{rule['id']}"),
            (f"/ui/rules/{rule['id']}", "completed"),
        ]:
            answer = await http.get(path)
            assert answer.status_code == 200, (path, answer.text[:500])
            assert marker in answer.text, path
        assert (await http.get("/ui/sessions/no-such-session")).status_code == 404
        assert (await http.get(f"/ui/executions/{uuid.uuid4()}")).status_code == 404
        assert (await http.get("/ui/executions?trigger=bogus")).status_code == 422


async def test_cancel_an_instance_from_its_page(api: Api, browser: Browser, console: str) -> None:
    instance = await api.start("CONST_RES", name="Cancelco")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "viewer")
    await page.goto(f"{console}/ui/instances/{instance['instance_id']}")
    await expect(page.locator("[data-created-entities]")).to_contain_text("created")
    await expect(page.locator("form[data-cancel]")).to_have_count(0)  # a viewer cannot cancel
    await page.click("text=Sign out")
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/instances/{instance['instance_id']}")
    await page.fill("form[data-cancel] input[name=comment]", "customer withdrew")
    await page.click("text=Cancel instance")
    await expect(page.locator(".flash.note")).to_have_text("Cancelled.")
    await expect(page.locator(".sub")).to_contain_text("cancelled")
    await expect(page.locator("form[data-cancel]")).to_have_count(0)
    await context.close()
    view = await api.get(instance["instance_id"])
    assert view["workflow_status"] == "cancelled"
