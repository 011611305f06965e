"""The ``instance.start`` and ``instance.transition`` step tools drive process instances as the API does:
the instance they start is a real ProcessInstance workflow (read back through the API), its transition
is recorded with the execution as the actor, and the instance's refusals fail the step with the
instance's own message, without retries that cannot succeed."""

from __future__ import annotations

from tests.support.api import Api
from tests.support.steps import run, steps_by_name


def start_step(name: str = "opened", **params: object) -> dict[str, object]:
    return {
        "name": name,
        "tool": "instance.start",
        "params": {"template_code": "HS_STD", "entity": {"name": "${input.customer}", "fields": {}}, **params},
    }


async def test_a_step_starts_an_instance_and_another_moves_it_on(api: Api) -> None:
    done = await run(
        api,
        [
            start_step(),
            {
                "name": "qualified",
                "tool": "instance.transition",
                "params": {
                    "instance_id": "${opened.instance_id}",
                    "to_state_id": 1,
                    "comment": "qualified by ${input.customer}",
                    "fields": {"step_note": "${input.note}"},
                },
            },
        ],
        {"customer": "Step Customer", "note": "from a step"},
    )
    assert done["status"] == "completed", done["error"]
    opened, qualified = done["output"]["opened"], done["output"]["qualified"]
    assert opened["template_code"] == "HS_STD" and opened["current_state"]["id"] == 0
    assert opened["workflow_status"] == "active"
    assert qualified["instance_id"] == opened["instance_id"]
    assert qualified["current_state"]["id"] == 1
    assert 1 not in [s["id"] for s in qualified["allowed_next_states"]]

    instance = await api.get(opened["instance_id"])
    assert instance["current_state"]["id"] == 1
    actor = f"workflow:{done['workflow_name']}:{done['id']}"
    assert [(h["from"], h["to"], h["actor"]) for h in instance["state_history"]] == [(None, 0, actor), (0, 1, actor)]
    assert instance["state_history"][1]["comment"] == "qualified by Step Customer"
    records = steps_by_name(done)
    assert records["qualified"]["input"]["instance_id"] == opened["instance_id"]  # recorded after substitution


async def test_the_instances_refusals_fail_the_step_without_useless_retries(api: Api) -> None:
    not_allowed = await run(
        api,
        [
            start_step(),
            {
                "name": "jump",
                "tool": "instance.transition",
                "params": {"instance_id": "${opened.instance_id}", "to_state_id": 9},
                "retry": {"maxAttempts": 3, "backoff": "fixed", "initialIntervalMs": 10},
            },
        ],
        {"customer": "Jumper"},
    )
    assert not_allowed["status"] == "failed"
    assert "jump" in not_allowed["error"] and "allowed next states: 1 (" in not_allowed["error"]
    assert steps_by_name(not_allowed)["jump"]["retry_count"] == 0  # refused: trying again cannot help

    unknown = await run(api, [start_step(template_code="NOPE_NOT_A_TEMPLATE")], {"customer": "Nobody"}, maxRetries=3)
    assert unknown["status"] == "failed"
    assert "no template 'NOPE_NOT_A_TEMPLATE'" in unknown["error"] and "HS_STD" in unknown["error"]
    assert steps_by_name(unknown)["opened"]["retry_count"] == 0
