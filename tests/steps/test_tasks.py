"""Human tasks of step workflows in the inbox: approved (with a form), rejected, reminded and escalated
on the time-skipping server, refused to anyone else (403); and a failed step escalated to a person who
retries, skips or aborts it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.support.api import Api, eventually
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, execution, finished, steps_by_name, unique_name, workflow

DAY_MS = 24 * 3600 * 1000


def review_workflow(name: str) -> dict[str, Any]:
    # config.timeoutMs bounds the run, the people it waits for included
    return workflow(
        name,
        [
            {
                "name": "review",
                "human_task": {
                    "assignee": "approver-user",
                    "title": "Review ${input.ref}",
                    "timeoutMs": DAY_MS,
                    "escalation": {"timeoutMs": 2 * DAY_MS, "escalateTo": "operator"},
                    "form": {
                        "type": "object",
                        "properties": {"budget": {"type": "number", "minimum": 0}},
                        "required": ["budget"],
                    },
                },
            },
            {
                "name": "outcome",
                "branch": {
                    "condition": "review.approved",
                    "then": [
                        {
                            "name": "implement",
                            "tool": "entity.create",
                            "params": {
                                "entity_type": "task_test",
                                "name": "build ${input.ref}",
                                "fields": {"budget": "${review.fields.budget}"},
                            },
                        }
                    ],
                    "else": [
                        {
                            "name": "notify_rejection",
                            "tool": "notify.send",
                            "params": {
                                "recipients": ["${input.requester}"],
                                "subject": "Rejected",
                                "body": "${review.comment}",
                            },
                        }
                    ],
                },
            },
        ],
        timeoutMs=7 * DAY_MS,
    )


async def task_for(api: Api, role: str, title: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        response = await api.request("GET", "/api/v1/inbox", role=role, params={"kind": "task"})
        assert response.status_code == 200, response.text
        return next((i for i in response.json() if i["title"] == title), None)

    return await eventually(found)  # type: ignore[no-any-return]


async def decide(api: Api, item: dict[str, Any], role: str, **body: Any) -> Any:
    return await api.request("POST", f"/api/v1/inbox/{item['id']}/decision", role=role, json=body)


async def test_a_task_is_approved_by_its_assignee_with_its_form(skipping_api: Api) -> None:
    name = unique_name("review")
    await create(skipping_api, review_workflow(name))
    ref = uuid.uuid4().hex[:6]
    started = await execute(skipping_api, name, {"ref": ref, "requester": "req-user"})
    item = await task_for(skipping_api, "approver", f"Review {ref}")
    assert item["actions"] == ["approve", "reject"] and item["assignee"] == ["approver-user"]

    assert (await decide(skipping_api, item, "viewer", action="approve", fields={"budget": 1})).status_code == 403
    early = await decide(skipping_api, item, "operator", action="approve", fields={"budget": 1})
    assert early.status_code == 403 and "once it escalates" in early.json()["detail"]
    no_form = await decide(skipping_api, item, "approver", action="approve")
    assert no_form.status_code == 422 and "budget" in no_form.json()["detail"], no_form.text
    wrong = await decide(skipping_api, item, "approver", action="retry")
    assert wrong.status_code == 422

    approved = await decide(skipping_api, item, "approver", action="approve", comment="go", fields={"budget": 5000})
    assert approved.status_code == 200, approved.text
    done = await finished(skipping_api, started["id"])
    assert done["status"] == "completed", done["error"]
    review = done["output"]["review"]
    assert review["approved"] is True and review["actor"] == "approver-user" and review["fields"] == {"budget": 5000}
    assert done["output"]["implement"]["fields"] == {"budget": 5000}
    again = await decide(skipping_api, item, "approver", action="approve", fields={"budget": 1})
    assert again.status_code == 409


async def test_a_rejected_task_takes_the_other_branch(skipping_api: Api) -> None:
    name = unique_name("review")
    await create(skipping_api, review_workflow(name))
    ref = uuid.uuid4().hex[:6]
    started = await execute(skipping_api, name, {"ref": ref, "requester": f"req-{ref}"})
    item = await task_for(skipping_api, "approver", f"Review {ref}")
    rejected = await decide(skipping_api, item, "approver", action="reject", comment="too expensive")
    assert rejected.status_code == 200, rejected.text
    done = await finished(skipping_api, started["id"])
    assert done["output"]["review"]["approved"] is False
    records = steps_by_name(done)
    assert "implement" not in records and records["notify_rejection"]["output"]["recipients"] == [f"req-{ref}"]


async def test_a_task_is_reminded_then_escalated_under_time_skipping(
    skipping_api: Api, time_skipping_env: WorkflowEnvironment
) -> None:
    name = unique_name("review")
    await create(skipping_api, review_workflow(name))
    ref = uuid.uuid4().hex[:6]
    started = await execute(skipping_api, name, {"ref": ref, "requester": "req-user"})
    item = await task_for(skipping_api, "approver", f"Review {ref}")

    async def notes(recipient: str, role: str) -> list[dict[str, Any]]:
        response = await skipping_api.request(
            "GET", "/api/v1/notifications", role=role, params={"recipient": recipient}
        )
        return [n for n in response.json()["items"] if ref in n["subject"]]

    await time_skipping_env.sleep(timedelta(days=1, minutes=5).total_seconds())

    async def reminded() -> bool:
        return any(n["subject"].startswith("Reminder") for n in await notes("approver-user", "approver"))

    await eventually(reminded)
    assert (await decide(skipping_api, item, "operator", action="approve", fields={"budget": 1})).status_code == 403

    await time_skipping_env.sleep(timedelta(days=1).total_seconds())

    async def escalated() -> bool:
        return any(n["subject"].startswith("Escalated") for n in await notes("operator", "operator"))

    await eventually(escalated)
    mine = await task_for(skipping_api, "operator", f"Review {ref}")
    assert mine["escalated"] is True and mine["assignee"] == ["approver-user", "operator"]
    decided = await decide(skipping_api, mine, "operator", action="approve", fields={"budget": 10})
    assert decided.status_code == 200, decided.text
    done = await finished(skipping_api, started["id"])
    assert done["output"]["review"]["actor"] == "operator-user"


@pytest.mark.parametrize(("final", "status"), [("skip", "completed"), ("abort", "failed")])
async def test_a_failed_step_escalated_to_a_person_is_retried_then_skipped_or_aborted(
    api: Api, webhook_server: WebhookServer, final: str, status: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    name = unique_name("escalate")
    await create(
        api,
        workflow(
            name,
            [
                {
                    "name": "sync",
                    "tool": "http.request",
                    "params": {"url": webhook_server.url(f"/gone/{tag}")},
                    "onError": {"strategy": "escalate", "escalationTarget": "operator"},
                },
                {"name": "after", "tool": "entity.create", "params": {"entity_type": "task_test", "name": "after"}},
            ],
        ),
    )
    started = await execute(api, name)
    title = f"{name}: step 'sync' failed"
    first = await task_for(api, "operator", title)
    assert first["actions"] == ["retry", "skip", "abort"]
    assert (await decide(api, first, "approver", action="retry")).status_code == 403
    assert (await decide(api, first, "operator", action="retry")).status_code == 200

    second = await task_for(api, "operator", title)  # the first is closed once decided
    assert second["id"] != first["id"]
    assert len(webhook_server.at(f"/gone/{tag}")) == 2  # the retry called again
    body = {"action": "skip", "reason": "known outage"} if final == "skip" else {"action": "abort"}
    assert (await decide(api, second, "operator", **body)).status_code == 200
    done = await finished(api, started["id"])
    assert done["status"] == status, done
    if final == "skip":
        assert [e["step"] for e in done["step_errors"]] == ["sync"] and "after" in done["output"]
    else:
        assert "abort by operator-user" in done["error"]
    assert (await execution(api, started["id"]))["live"] is None
