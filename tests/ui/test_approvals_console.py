"""An approval a policy asked for, in the console's inbox (issue 25): what is asked, by whom, under which
policy and how many votes it has; approved there by an approver; the requester does not see it. Looked
at at laptop and phone width."""

from __future__ import annotations

import uuid

from playwright.async_api import Browser, expect

from tests.support.api import Api, eventually
from tests.support.process import node, template, unique_code
from tests.ui.test_console import shot, sign_in


async def test_a_policy_approval_is_decided_in_the_console_inbox(api: Api, browser: Browser, console: str) -> None:
    code = unique_code("UIPOL")
    states = [node(0, [], [1]), node(1, [0], [2], name="quoted"), node(2, [1], [], name="accepted")]
    assert (await api.request("POST", "/api/v1/workflow-template", json=template(code, states))).status_code == 201
    policy = f"big-deals-{uuid.uuid4().hex[:6]}"
    saved = await api.request(
        "PUT",
        f"/api/v1/policies/{policy}",
        json={
            "description": "deals above 10,000 need an approver",
            "target": {"kind": "transition", "template_code": code, "to_states": ["accepted"]},
            "condition": "args.amount > 10000",
            "effect": "require_approval",
            "approval": {"approvers": {"roles": ["approver"]}},
        },
    )
    assert saved.status_code == 200, saved.text
    instance = (await api.start(code))["instance_id"]
    assert (await api.transition(instance, 1)).status_code == 200
    asked = await api.transition(instance, 2, fields={"amount": 25000})
    assert asked.status_code == 202, asked.text
    approval = asked.json()["approval_id"]

    for width, height, name in ((1280, 900, "inbox-policy-approval"), (390, 844, "inbox-policy-approval-phone")):
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        await sign_in(page, console, "approver")
        await page.goto(f"{console}/ui/inbox")
        row = page.locator(f"[data-item='policy:{approval}']")
        await expect(row).to_contain_text(policy)
        await expect(row).to_contain_text("operator-user wants to move")
        await expect(row.locator("[data-detail]")).to_contain_text("25000")
        await shot(page, name)
        await context.close()

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "operator")  # the requester
    await page.goto(f"{console}/ui/inbox")
    await expect(page.locator(f"[data-item='policy:{approval}']")).to_have_count(0)
    await context.close()

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, console, "approver")
    await page.goto(f"{console}/ui/inbox")
    await page.locator(f"[data-item='policy:{approval}'] button[value=approve]").click()
    await expect(page.locator(".flash")).to_contain_text("Done: approve")
    await context.close()

    async def moved() -> bool | None:
        view = (await api.request("GET", f"/api/v1/workflow-instance/{instance}", role="viewer")).json()
        return True if view["current_state"]["name"] == "accepted" else None

    assert await eventually(moved, attempts=200)
