"""Starting work from the console (issue 22): a process instance from its form, and a step workflow
executed from a form generated from the ``${input.…}`` references of its definition."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.support.api import Api
from tests.support.steps import create, finished, unique_name, workflow
from tests.ui.test_console import shot, sign_in


async def test_start_an_instance_from_its_form(api: Api, browser: Browser, console: str) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/instances")
    await page.click("text=Start an instance")
    await page.select_option("select[name=template_code]", "CONST_RES")
    await page.fill("input[name=name]", "Formstart Ltd")
    await page.fill("textarea[name=fields]", "{not json")
    await page.click("form[data-start-instance] button[type=submit]")
    await expect(page.locator(".flash.error")).to_contain_text("Fields: not JSON")
    await page.select_option("select[name=template_code]", "CONST_RES")
    await page.fill("input[name=name]", "Formstart Ltd")
    await page.fill("textarea[name=fields]", '{"email": "ops@formstart.example"}')
    await page.click("form[data-start-instance] button[type=submit]")
    await expect(page.locator(".flash.note")).to_have_text("Started in lead.")
    await expect(page.locator("[data-current-state]")).to_have_text("lead")
    instance_id = page.url.split("/ui/instances/")[1].split("?")[0]
    view = await api.get(instance_id)
    assert view["template_code"] == "CONST_RES"
    await context.close()


async def test_execute_a_workflow_from_its_generated_form(api: Api, browser: Browser, console: str) -> None:
    name = unique_name("console_form")
    steps = [
        {"name": "made", "tool": "entity.create", "params": {"entity_type": "console_form", "name": "${input.label}"}},
        {"name": "done", "tool": "entity.update", "params": {"id": "${made.id}", "fields": {"n": "${input.count}"}}},
    ]
    await create(api, workflow(name, steps))
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "operator")
    await page.goto(f"{console}/ui/workflows")
    await page.click(f"text={name}")
    await expect(page.locator("[data-versions] tbody tr")).to_have_count(1)
    form = page.locator("form[data-execute]")
    await expect(form.locator("input[name^='input.']")).to_have_count(2)  # label and count, from the references
    await form.locator("input[name='input.label']").fill("Formco")
    await form.locator("input[name='input.count']").fill("3")
    await shot(page, "workflow-form")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".flash.note")).to_have_text("Started.")
    execution_id = page.url.split("/ui/executions/")[1].split("?")[0]
    done = await finished(api, execution_id)
    assert done["status"] == "completed", done["error"]
    assert done["input"] == {"label": "Formco", "count": 3}  # a number stays a number
    await context.close()
