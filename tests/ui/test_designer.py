"""The designer (issue 23) in a real browser, built by mouse and keyboard only: no JSON is typed. Each
test reads the result back through the API (what was stored), not from the page's own state."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Locator, Page, expect

from tests.support.api import Api, eventually
from tests.support.steps import unique_name
from tests.ui.test_console import shot, sign_in
from tests.ui.test_lists import _sign_in

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
    body = page.locator("[data-field='steps[1].parallel.branches[1].steps[0].params.body']")
    await expect(body.locator(".d-field-problem")).to_contain_text("refers to 'quote'")
    await expect(page.locator("[data-action=save]")).to_be_disabled()
    await shot(page, "designer-workflow-problem")
    # The fix: a reference the step can see, picked from the suggestions.
    await set_field(page, "body", "Total ")
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


def three_states(code: str) -> dict[str, Any]:
    def state(sid: int, name: str, parents: list[int], children: list[int], **more: Any) -> dict[str, Any]:
        return {"id": sid, "name": name, "parent_ids": parents, "child_ids": children, **more}

    return {
        "code": code,
        "name": "Three states",
        "industry_sector": "Testing",
        "workflow_graph": {
            "states": [
                state(1, "Open", [], [2]),
                state(2, "Check", [1], [3]),
                state(3, "Closed", [2], [], terminal_flag=True, success=True),
            ]
        },
    }


async def test_a_diff_of_two_versions_is_drawn_on_the_canvas(api: Api, browser: Browser, console: str) -> None:
    code = "DIFFED_" + uuid.uuid4().hex[:6].upper()
    created = await api.request("POST", "/api/v1/workflow-template", json=three_states(code))
    assert created.status_code == 201, created.text
    page, errors = await open_designer(browser, console, f"/ui/designer/templates/{code}")
    await expect(page.locator("[data-version]")).to_have_text("v1")
    await node(page, "Check").click()
    await set_field(page, "Name", "Credit check")
    await set_field(page, "Expected days in this state", "2")
    await valid(page)
    await page.click("[data-action=save]")
    await expect(page.locator("[data-status]")).to_have_text("Saved as version 2.")

    await page.click("[data-tab=versions]")
    await expect(page.locator("table.d-versions tbody tr")).to_have_count(2)
    await page.select_option("[data-compare-from]", "1")
    await page.select_option("[data-compare-to]", "2")
    await page.click("[data-action=compare]")
    await expect(page.locator("[data-banner]")).to_contain_text(
        "Comparing v1 → v2 (states: 0 added, 0 removed, 1 changed"
    )
    changed = page.locator("g.d-node.changed")
    await expect(changed).to_have_count(1)
    await expect(changed.locator("text.t1")).to_have_text("Credit check")
    await expect(changed).to_have_attribute("aria-label", re.compile("changed: avg_duration_days, name"))
    await expect(page.locator("g.d-node.added, g.d-node.removed")).to_have_count(0)
    await expect(page.locator("[data-jsondiff] span.del")).to_contain_text(['"name": "Check"'])
    await expect(page.locator("[data-jsondiff] span.add")).to_contain_text(['"name": "Credit check"'])
    await shot(page, "designer-diff")
    # While comparing nothing is edited; back to editing, version 2 is on the canvas again.
    await expect(page.locator("[data-action=undo]")).to_be_disabled()
    await page.click("[data-banner] button")
    await expect(page.locator("g.d-node.changed")).to_have_count(0)
    await expect(node(page, "Credit check")).to_have_count(1)
    assert not errors, errors
    await page.context.close()


async def test_undo_and_redo_by_buttons_and_keys_and_editing_by_keyboard(
    api: Api, browser: Browser, console: str
) -> None:
    page, errors = await open_designer(browser, console, "/ui/designer/templates/new")
    nodes = page.locator("g.d-node")
    await expect(nodes).to_have_count(1)
    # By keyboard: focus the start state, A adds a state after it, C then Enter connects two states.
    await node(page, "Start").focus()
    await page.keyboard.press("a")
    await expect(nodes).to_have_count(2)
    await expect(page.locator("g.d-edge")).to_have_count(1)
    await page.keyboard.press("a")  # State 3, after State 2
    await expect(nodes).to_have_count(3)
    await node(page, "Start").focus()
    await page.keyboard.press("c")
    await node(page, "State 3").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("g.d-edge")).to_have_count(3)
    # Delete removes the selected state and its transitions.
    await node(page, "State 2").focus()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Delete")
    await expect(nodes).to_have_count(2)
    await expect(page.locator("g.d-edge")).to_have_count(1)

    await page.locator("[data-canvas]").focus()
    await page.keyboard.press("Control+z")
    await expect(nodes).to_have_count(3)
    await expect(page.locator("g.d-edge")).to_have_count(3)
    await page.keyboard.press("Control+y")
    await expect(nodes).to_have_count(2)
    await page.click("[data-action=undo]")
    await expect(nodes).to_have_count(3)
    await page.click("[data-action=undo]")  # the connection
    await expect(page.locator("g.d-edge")).to_have_count(2)
    await page.keyboard.press("Control+Shift+z")
    await expect(page.locator("g.d-edge")).to_have_count(3)
    # A field's edit is one step of the history too, and the JSON view follows every step.
    await node(page, "State 3").click()
    await set_field(page, "Name", "Closing")
    await expect(node(page, "Closing")).to_have_count(1)
    await page.click("[data-action=undo]")
    await expect(node(page, "State 3")).to_have_count(1)
    await page.click("[data-tab=json]")
    assert '"name": "State 3"' in await page.locator("[data-json]").input_value()
    await page.click("[data-action=redo]")
    assert '"name": "Closing"' in await page.locator("[data-json]").input_value()
    await expect(page.locator("[data-action=redo]")).to_be_disabled()
    assert not errors, errors
    await page.context.close()


async def test_export_then_import_round_trip(api: Api, browser: Browser, console: str, tmp_path: Path) -> None:
    code = "EXPORTED_" + uuid.uuid4().hex[:6].upper()
    created = await api.request("POST", "/api/v1/workflow-template", json=three_states(code))
    assert created.status_code == 201, created.text
    page, errors = await open_designer(browser, console, f"/ui/designer/templates/{code}")
    async with page.expect_download() as waiting:
        await page.click("[data-action=export]")
    download = await waiting.value
    assert download.suggested_filename == f"{code}.json"
    exported = tmp_path / download.suggested_filename
    await download.save_as(exported)
    stored = created.json()
    saved = {k: stored[k] for k in ("code", "name", "industry_sector", "workflow_graph")}
    assert json.loads(exported.read_text()) == saved

    # Into a new template: the file is drawn, checked, and saved as it was.
    fresh, more_errors = await open_designer(browser, console, "/ui/designer/templates/new")
    await fresh.locator("[data-import]").set_input_files(exported)
    await expect(fresh.locator("g.d-node")).to_have_count(3)
    await expect(fresh.locator("[data-status]")).to_have_text("Valid: ready to save")
    await fresh.click("[data-tab=json]")
    assert json.loads(await fresh.locator("[data-json]").input_value()) == saved
    # The import is one edit: undo brings the blank template back.
    await fresh.locator("[data-canvas]").focus()
    await fresh.keyboard.press("Control+z")
    await expect(fresh.locator("g.d-node")).to_have_count(1)
    # A file that is not a template is refused with a reason, and nothing changes.
    wrong = tmp_path / "workflow.json"
    wrong.write_text(json.dumps({"name": "x", "steps": []}))
    await fresh.locator("[data-import]").set_input_files(wrong)
    await expect(fresh.locator("[data-status]")).to_contain_text("not a process template")
    await expect(fresh.locator("g.d-node")).to_have_count(1)
    assert not errors and not more_errors, errors + more_errors
    await page.context.close()
    await fresh.context.close()


async def test_others_read_only_and_the_calls_need_the_page_token(api: Api, browser: Browser, console: str) -> None:
    code = "READONLY_" + uuid.uuid4().hex[:6].upper()
    created = await api.request("POST", "/api/v1/workflow-template", json=three_states(code))
    assert created.status_code == 201, created.text
    page, errors = await open_designer(browser, console, f"/ui/designer/templates/{code}", role="operator")
    await expect(page.locator("[data-readonly]")).to_be_visible()
    await expect(page.locator("[data-palette]")).to_be_hidden()
    await expect(page.locator("[data-action=save]")).to_be_hidden()
    await node(page, "Check").click()
    await expect(page.locator("[data-form]").get_by_label("Name", exact=True)).to_be_disabled()
    await page.keyboard.press("Delete")
    await expect(page.locator("g.d-node")).to_have_count(3)
    await expect(page.locator("[data-status]")).to_have_text("Valid · saved")
    # Calls that change something need the page's token, from the page's origin; an operator's is refused.
    token = await page.locator("#designer").get_attribute("data-csrf")
    assert token
    body = three_states(code)
    refused = await page.request.post(f"{console}/ui/designer/api/templates", data=body)
    assert refused.status == 403 and (await refused.json())["error"] == "csrf"
    refused = await page.request.post(
        f"{console}/ui/designer/api/templates", data=body, headers={"X-CSRF-Token": token, "Origin": console}
    )
    assert refused.status == 403 and "may not save process templates" in (await refused.json())["detail"]
    await page.context.close()

    phone, phone_errors = await open_designer(
        browser, console, f"/ui/designer/templates/{code}", viewport={"width": 390, "height": 844}
    )
    await expect(phone.locator("[data-readonly]")).to_be_visible()
    await expect(phone.locator("g.d-node")).to_have_count(3)
    await shot(phone, "designer-phone")
    assert not errors and not phone_errors, errors + phone_errors
    await phone.context.close()


async def test_the_designer_calls_answer_people_not_stack_traces(console: str) -> None:
    """The page's JSON calls: a malformed definition is a report with each path (drawn on its node), a
    broken DAG is the first rule it breaks, a signed-out call is a 401 the page can show, and a write
    without the page's token or from another origin is refused."""
    async with httpx.AsyncClient(base_url=console) as http:
        signed_out = await http.post("/ui/designer/api/templates/validate", json={})
        assert signed_out.status_code == 401 and signed_out.json()["error"] == "signed_out"
        await _sign_in(http, "admin")
        page = await http.get("/ui/designer/templates/new")
        token = re.search(r'data-csrf="([^"]+)"', page.text)
        assert page.status_code == 200 and token
        shape = await http.post("/ui/designer/api/templates/validate", content=b'{"code": "x", "workflow_graph": {}}')
        assert shape.status_code == 200
        fields = {p["field"] for p in shape.json()["problems"]}
        assert {"code", "name", "industry_sector", "workflow_graph.states"} <= fields
        not_json = await http.post("/ui/designer/api/templates/validate", content=b"{nope")
        assert not_json.status_code == 200 and not not_json.json()["valid"]
        stuck = three_states("STUCK_ONE")
        stuck["workflow_graph"]["states"][2]["terminal_flag"] = False
        dag = await http.post("/ui/designer/api/templates/validate", json=stuck)
        assert dag.json()["problems"][0]["field"].startswith("workflow_graph.states[")
        origin = {"origin": console, "x-csrf-token": token.group(1)}
        no_token = await http.post(
            "/ui/designer/api/templates", json=three_states("NO_TOKEN"), headers={"origin": console}
        )
        assert no_token.status_code == 403
        elsewhere = await http.post(
            "/ui/designer/api/templates",
            json=three_states("ELSEWHERE"),
            headers={**origin, "origin": "http://evil.test"},
        )
        assert elsewhere.status_code == 403
        invalid = await http.post("/ui/designer/api/templates", json=stuck, headers=origin)
        assert invalid.status_code == 422 and invalid.json()["error"] == "invalid_template"
        unknown = await http.get("/ui/designer/api/workflows/no_such_workflow/versions")
        assert unknown.status_code == 404 and "no step workflow" in unknown.json()["detail"]
        huge = await http.post("/ui/designer/api/workflows/validate", content=b" " * 1_000_001)
        assert huge.status_code == 413
