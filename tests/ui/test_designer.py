"""The designer (issue 23) in a real browser, built by mouse and keyboard only: no JSON is typed. Each
test reads the result back through the API (what was stored), not from the page's own state."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect

from tests.support.api import Api, eventually
from tests.support.steps import unique_name
from tests.ui.test_console import shot, sign_in

LAPTOP = {"width": 1440, "height": 900}


async def open_designer(
    browser: Browser, console: str, path: str, role: str = "admin", viewport: dict[str, int] = LAPTOP
) -> tuple[Page, list[str]]:
    """A signed-in page on the designer, collecting script errors and failed requests (a test fails on
    any: an error the designer hides from its status line is still an error)."""
    context = await browser.new_context(viewport=viewport, accept_downloads=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"script: {exc}"))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    await sign_in(page, console, role)
    await page.goto(f"{console}{path}")
    await expect(page.locator("#designer[data-ready=true]")).to_have_count(1)
    return page, errors


def node(page: Page, title: str) -> Locator:
    return page.locator("g.d-node", has=page.locator("text.t1", has_text=title)).first


async def set_field(page: Page, label: str, value: str) -> None:
    """Type into a properties field by its label, and leave it (a change is committed on leaving)."""
    box = page.locator("[data-form]").get_by_label(label, exact=True)
    await box.fill(value)
    await box.press("Tab")


async def valid(page: Page) -> None:
    try:
        await expect(page.locator("[data-status]")).to_have_text("Valid: ready to save")
    except AssertionError as exc:
        problems = await page.locator("[data-problems]").inner_text()
        raise AssertionError(f"the designer reports problems: {problems}") from exc


async def test_design_a_template_save_it_and_start_an_instance(api: Api, browser: Browser, console: str) -> None:
    code = "DESIGNED_" + uuid.uuid4().hex[:6].upper()
    page, errors = await open_designer(browser, console, "/ui/designer/templates/new")
    await set_field(page, "Code", code)
    await set_field(page, "Name", "Designed sale")
    await set_field(page, "Industry sector", "Retail")

    # Lead → Quote → Manager review (an approval gate) → Won | Lost; Quote → Negotiation → Manager review.
    await node(page, "Start").click()
    await set_field(page, "Name", "Lead")
    await page.click("[data-add=state]")
    await set_field(page, "Name", "Quote")
    await page.click("[data-add=approval]")
    await set_field(page, "Name", "Manager review")
    await page.click("[data-add=success]")
    await set_field(page, "Name", "Won")
    await node(page, "Manager review").click()
    await page.click("[data-add=failure]")
    await set_field(page, "Name", "Lost")
    await node(page, "Quote").click()
    await page.click("[data-add=state]")
    await set_field(page, "Name", "Negotiation")
    # Not yet connected onward: the server says so, on the node.
    await expect(node(page, "Negotiation")).to_have_class(re.compile("has-problem"))
    # Connect Negotiation → Manager review by dragging from its port onto the other node.
    port = node(page, "Negotiation").locator("circle.d-port")
    await port.hover()
    await page.mouse.down()
    target = await node(page, "Manager review").bounding_box()
    assert target is not None
    await page.mouse.move(target["x"] + target["width"] / 2, target["y"] + target["height"] / 2, steps=8)
    await page.mouse.up()
    await valid(page)
    await expect(page.locator("g.d-node")).to_have_count(6)
    await expect(page.locator("g.d-node.has-problem")).to_have_count(0)
    await shot(page, "designer-template")

    await page.click("[data-action=save]")
    await expect(page.locator("[data-status]")).to_have_text("Saved as version 1.")
    await expect(page).to_have_url(f"{console}/ui/designer/templates/{code}")
    stored = await api.request("GET", f"/api/v1/workflow-template/{code}", role="viewer")
    assert stored.status_code == 200, stored.text
    template = stored.json()
    assert template["version"] == 1
    by_name = {s["name"]: s for s in template["workflow_graph"]["states"]}
    assert set(by_name) == {"Lead", "Quote", "Manager review", "Won", "Lost", "Negotiation"}
    review = by_name["Manager review"]
    assert review["approval"]["roles"] == ["approver"]
    assert {by_name["Won"]["id"], by_name["Lost"]["id"]} == set(review["child_ids"])
    assert by_name["Lost"]["terminal_flag"] is True and by_name["Lost"]["success"] is False
    assert review["id"] in by_name["Negotiation"]["child_ids"]
    assert set(by_name["Quote"]["child_ids"]) == {review["id"], by_name["Negotiation"]["id"]}

    # Try it: the start form, then the new instance's live page.
    await page.click("[data-try]")
    await expect(page).to_have_url(f"{console}/ui/instances/new?template={code}")
    await page.fill("input[name=name]", "Designer Customer Ltd")
    await page.click("form[data-start-instance] button[type=submit]")
    await expect(page.locator("[data-current-state]")).to_have_text("Lead")
    assert not errors, errors
    await page.context.close()


async def test_design_a_workflow_fix_its_reference_save_and_execute(api: Api, browser: Browser, console: str) -> None:
    name = unique_name("designed")
    page, errors = await open_designer(browser, console, "/ui/designer/workflows/new")
    await set_field(page, "Name", name)
    await node(page, "step_1").click()
    await set_field(page, "recipients (comma separated)", "operator")
    await set_field(page, "subject", "New order")
    await set_field(page, "body", "Order ${input.order} arrived")

    # A parallel block after step_1: lane a becomes a person's task, lane b a notice.
    await page.click("[data-add=parallel]")
    await node(page, "step_2").click()
    await page.locator("[data-form]").get_by_label("Kind", exact=True).select_option("human_task")
    await node(page, "step_3").click()
    await set_field(page, "recipients (comma separated)", "operator")
    await set_field(page, "subject", "Heads up")
    await set_field(page, "body", "Total ${quote.total}")  # no step called quote: an invalid reference
    await expect(node(page, "step_3")).to_have_class(re.compile("has-problem"))
    await expect(node(page, "step_3").locator(".d-badge text")).to_have_text("1")
    await expect(
        page.locator("[data-field='steps[1].parallel.branches[1].steps[0].params.body'] .d-field-problem")
    ).to_contain_text("refers to 'quote'")
    await expect(page.locator("[data-action=save]")).to_be_disabled()
    await shot(page, "designer-workflow-problem")
    # The fix: a reference the step can see, picked from the suggestions.
    await set_field(page, "body", "Total ")
    body = page.locator("[data-field='steps[1].parallel.branches[1].steps[0].params.body']")
    await body.locator("summary").click()
    await body.locator("button.chip", has_text="${step_1.subject}").click()
    await expect(node(page, "step_3")).not_to_have_class(re.compile("has-problem"))

    # A branch after the parallel block, whose "then" arm sends a notice.
    await node(page, "parallel_1").click()
    await page.click("[data-add=branch]")
    await set_field(page, "Condition (CEL, or ${ref} for truthy)", "${step_2.approved}")
    await node(page, "step_4").click()
    await set_field(page, "recipients (comma separated)", "operator")
    await set_field(page, "subject", "Approved")
    await set_field(page, "body", "Approved by ${step_2.actor}")
    await valid(page)
    await shot(page, "designer-workflow")
    await page.click("[data-action=save]")
    await expect(page.locator("[data-status]")).to_have_text("Saved as version 1.")

    stored = await api.request("GET", f"/api/v1/workflows/{name}", role="viewer")
    assert stored.status_code == 200, stored.text
    steps = stored.json()["definition"]["steps"]
    assert [s["name"] for s in steps] == ["step_1", "parallel_1", "branch_1"]
    lanes = steps[1]["parallel"]["branches"]
    assert lanes[0]["steps"][0]["human_task"]["assignee"] == "operator"
    assert lanes[1]["steps"][0]["params"] == {
        "recipients": ["operator"],
        "subject": "Heads up",
        "body": "Total ${step_1.subject}",
    }
    assert steps[2]["branch"]["then"][0]["params"]["body"] == "Approved by ${step_2.actor}"

    # Try it: the workflow's page with its input form, then the execution's live page.
    await page.click("[data-try]")
    await expect(page).to_have_url(f"{console}/ui/workflows/{name}")
    await page.fill("input[name='input.order']", "A-17")
    await page.click("form[data-execute] button[type=submit]")
    await expect(page).to_have_url(re.compile("/ui/executions/"))
    await expect(page.locator("main")).to_contain_text(name)
    execution_id = page.url.split("/ui/executions/")[1].split("?")[0]

    async def lane_b_done() -> dict[str, Any] | None:
        found = await api.request("GET", f"/api/v1/workflow-executions/{execution_id}", role="viewer")
        detail: dict[str, Any] = found.json()
        steps = {s["name"]: s for s in detail["steps"]}
        return detail if "step_3" in steps and steps["step_3"]["status"] == "completed" else None

    # Lane b ran with the fixed reference; lane a's task waits for a person, so the run is still open.
    detail = await eventually(lane_b_done)
    assert detail["status"] == "running"
    assert {s["name"]: s["input"]["body"] for s in detail["steps"]}["step_3"] == "Total New order"
    cancelled = await api.request("POST", f"/api/v1/workflow-executions/{execution_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert not errors, errors
    await page.context.close()
