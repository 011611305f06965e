"""An item's execution_data is bounded like an entity (TRELLIS_ENTITY_MAX_BYTES): a change that would take
it past the cap is refused with 413 and changes nothing, and the item's workflow goes on taking changes.
Before, merged PATCHes grew it past Temporal's 2 MB limit and wedged the item for good."""

from __future__ import annotations

from tests.support.api import Api
from tests.support.work import act, customer, demo


async def test_execution_data_past_its_cap_is_refused_and_the_item_lives_on(api: Api) -> None:
    entity = await customer(api, revenue_impact_tier=1)
    [item, *_] = await demo(api, entity, "operator-user")
    chunk = "x" * 60_000  # under the test body cap (64 KiB); five of them pass the 256 KiB data cap
    answers = []
    for n in range(5):
        response = await act(
            api, "operator", item["id"], "status", "PATCH", status="underway", execution_data={f"part{n}": chunk}
        )
        answers.append(response.status_code)
    assert answers == [200, 200, 200, 200, 413], answers
    refused = response.json()
    assert refused["error"] == "too_large" and "TRELLIS_ENTITY_MAX_BYTES" in refused["detail"], refused
    assert "Nothing was changed" in refused["detail"]
    stored = (await api.request("GET", f"/api/v1/orchestrator/executions/{item['id']}", role="operator")).json()
    assert sorted(stored["execution_data"]) == ["part0", "part1", "part2", "part3"]
    # The item still answers at once: a key replaced in place fits, and it completes.
    replaced = await act(
        api, "operator", item["id"], "status", "PATCH", status="underway", execution_data={"part0": "done"}
    )
    assert replaced.status_code == 200, replaced.text
    completed = await act(api, "operator", item["id"], "status", "PATCH", status="completed")
    assert completed.status_code == 200 and completed.json()["status"] == "completed", completed.text
