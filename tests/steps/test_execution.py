"""Step workflows run on the real servers: references keep their types, ``if`` skips are recorded,
each backoff kind waits as declared (read from the workflow's timers), time-outs of a step and of a
run, continueOnError, and an MCP server's tool."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.support.api import Api
from tests.support.servers import WebhookServer
from tests.support.steps import run, steps_by_name, unique_name


def create_step(name: str, fields: dict[str, Any], entity_type: str = "step_test", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tool": "entity.create",
        "params": {"entity_type": entity_type, "name": f"made by {name}", "fields": fields},
        **extra,
    }


async def test_a_whole_reference_keeps_its_type_and_a_partial_one_is_interpolated(api: Api) -> None:
    done = await run(
        api,
        [
            create_step(
                "first",
                {
                    "total": "${input.total}",
                    "lines": "${input.lines}",
                    "customer": "${input.customer}",
                    "first_line": "${input.lines[0].sku}",
                    "label": "total ${input.total} for ${input.customer.name}",
                    "untouched": "${not a reference",
                },
            ),
            create_step("second", {"copied": "${first.fields.total}", "from": "${first.id}"}),
        ],
        {"total": 1250.5, "lines": [{"sku": "A-1", "qty": 2}], "customer": {"name": "Acme", "tier": 3}},
    )
    assert done["status"] == "completed", done
    first = done["output"]["first"]["fields"]
    assert first["total"] == 1250.5 and isinstance(first["total"], float)
    assert first["lines"] == [{"sku": "A-1", "qty": 2}]
    assert first["customer"] == {"name": "Acme", "tier": 3}
    assert first["first_line"] == "A-1"
    assert first["label"] == "total 1250.5 for Acme"
    assert first["untouched"] == "${not a reference"
    assert done["output"]["second"]["fields"] == {"copied": 1250.5, "from": done["output"]["first"]["id"]}
    steps = steps_by_name(done)
    assert steps["first"]["input"]["fields"]["total"] == 1250.5  # the input after substitution
    assert [s["status"] for s in done["steps"]] == ["completed", "completed"]


async def test_values_from_data_are_never_resolved_again(api: Api) -> None:
    done = await run(
        api,
        [create_step("only", {"note": "${input.note}", "text": "say ${input.note}"})],
        {
            "note": "${input.secret}",
            "secret": "leaked",
        },
    )
    fields = done["output"]["only"]["fields"]
    assert fields == {"note": "${input.secret}", "text": "say ${input.secret}"}


async def test_a_false_if_is_recorded_as_skipped_and_a_missing_reference_fails_naming_it(api: Api) -> None:
    done = await run(
        api,
        [
            create_step("always", {"n": 1}),
            create_step("never", {"n": 2}, **{"if": "${input.flag}"}),
            create_step("by_cel", {"n": 3}, **{"if": "always.fields.n == 1 && input.amount > 100"}),
            create_step("cel_false", {"n": 4}, **{"if": "input.amount < 100"}),
        ],
        {"amount": 150},
    )
    assert done["status"] == "completed", done
    statuses = {name: s["status"] for name, s in steps_by_name(done).items()}
    assert statuses == {"always": "completed", "never": "skipped", "by_cel": "completed", "cel_false": "skipped"}
    assert set(done["output"]) == {"always", "by_cel"}

    missing = await run(api, [create_step("needs", {"x": "${input.absent.deep}"})], {})
    assert missing["status"] == "failed"
    assert "${input.absent.deep}" in missing["error"] and "needs" in missing["error"]
    assert steps_by_name(missing)["needs"]["status"] == "failed"


async def _timer_waits(client: Client, workflow_id: str) -> list[int]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        int(e.timer_started_event_attributes.start_to_fire_timeout.ToMilliseconds())
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


async def test_each_backoff_kind_waits_as_declared(
    api: Api, webhook_server: WebhookServer, temporal_client: Client
) -> None:
    expected = {
        "fixed": [100, 100, 100],
        "linear": [100, 200, 300],
        "exponential": [100, 200, 400],
    }
    for kind, waits in expected.items():
        path = f"/fail/backoff-{kind}-{unique_name('t')}"
        done = await run(
            api,
            [
                {
                    "name": "call",
                    "tool": "http.request",
                    "params": {"url": webhook_server.url(path), "method": "POST"},
                    "retry": {"maxAttempts": 4, "backoff": kind, "initialIntervalMs": 100, "maxIntervalMs": 350},
                }
            ],
        )
        assert done["status"] == "failed", done
        assert "after 4 attempts" in done["error"]
        assert len(webhook_server.at(path)) == 4  # each attempt reached the receiver once
        capped = [min(w, 350) for w in waits]
        timers = await _timer_waits(temporal_client, done["temporal_workflow_id"])
        assert capped == [t for t in timers if t < 10_000], (kind, timers)
        assert steps_by_name(done)["call"]["retry_count"] == 3

    # config.maxRetries is the default: two retries, then the step fails
    path = f"/fail/{unique_name('default')}"
    done = await run(
        api, [{"name": "call", "tool": "http.request", "params": {"url": webhook_server.url(path)}}], maxRetries=2
    )
    assert len(webhook_server.at(path)) == 3 and done["status"] == "failed"

    # a refusal (410) is not retried whatever the settings say
    path = f"/gone/{unique_name('gone')}"
    done = await run(
        api,
        [
            {
                "name": "call",
                "tool": "http.request",
                "params": {"url": webhook_server.url(path)},
                "retry": {"maxAttempts": 5},
            }
        ],
    )
    assert len(webhook_server.at(path)) == 1 and "410" in done["error"]


async def test_a_flaky_step_succeeds_on_a_later_attempt_and_counts_its_retries(
    api: Api, webhook_server: WebhookServer
) -> None:
    path = f"/flaky/{unique_name('flaky')}"
    done = await run(
        api,
        [
            {
                "name": "call",
                "tool": "http.request",
                "params": {"url": webhook_server.url(path), "method": "POST", "body": {"n": "${input.n}"}},
                "retry": {"maxAttempts": 3, "backoff": "fixed", "initialIntervalMs": 50},
            }
        ],
        {"n": 7},
    )
    assert done["status"] == "completed", done
    assert steps_by_name(done)["call"]["retry_count"] == 2
    hits = webhook_server.at(path)
    assert len(hits) == 3 and {h.headers["webhook-id"] for h in hits} == {done["output"]["call"]["webhook_id"]}
    assert done["output"]["call"]["body"] == {"ok": True}


async def test_step_and_run_time_outs(api: Api, webhook_server: WebhookServer) -> None:
    slow = webhook_server.url(f"/slow/{unique_name('slow')}")
    done = await run(api, [{"name": "call", "tool": "http.request", "params": {"url": slow}, "timeoutMs": 100}])
    assert done["status"] == "failed"
    assert "did not finish within 100 ms" in done["error"], done["error"]

    failing = webhook_server.url(f"/fail/{unique_name('long')}")
    done = await run(
        api,
        [
            create_step("before", {"n": 1}),
            {
                "name": "call",
                "tool": "http.request",
                "params": {"url": failing},
                "retry": {"maxAttempts": 50, "backoff": "fixed", "initialIntervalMs": 200},
            },
            create_step("after", {"n": 2}),
        ],
        timeoutMs=1500,
    )
    assert done["status"] == "failed"
    assert "exceeded its timeoutMs of 1500 ms" in done["error"] and "call" in done["error"], done["error"]
    assert [s["name"] for s in done["steps"]] == ["before"]


async def test_continue_on_error_completes_listing_the_failed_step(api: Api, webhook_server: WebhookServer) -> None:
    gone = webhook_server.url(f"/gone/{unique_name('gone')}")
    steps = [
        create_step("first", {"n": 1}),
        {"name": "broken", "tool": "http.request", "params": {"url": gone}},
        create_step("last", {"n": 3}),
    ]
    done = await run(api, steps, continueOnError=True)
    assert done["status"] == "completed", done
    assert [e["step"] for e in done["step_errors"]] == ["broken"]
    assert {s["name"]: s["status"] for s in done["steps"]} == {
        "first": "completed",
        "broken": "failed",
        "last": "completed",
    }

    stopped = await run(api, steps)
    assert stopped["status"] == "failed" and "step 'broken' (http.request) failed" in stopped["error"]
    assert "last" not in {s["name"] for s in stopped["steps"]}
    listed = await api.request("GET", f"/api/v1/workflow-executions?workflow={stopped['workflow_name']}&status=failed")
    assert [e["id"] for e in listed.json()["items"]] == [stopped["id"]]
    assert listed.json()["items"][0]["error"] == stopped["error"]


async def test_an_mcp_server_tool_is_called_as_a_step(api: Api) -> None:
    done = await run(
        api,
        [
            {"name": "sum", "tool": "testmcp.add", "params": {"a": "${input.a}", "b": 2.5}},
            {"name": "say", "tool": "testmcp.echo", "params": {"text": "sum is ${sum.result.sum}"}},
        ],
        {"a": 4},
    )
    assert done["status"] == "completed", done
    assert done["output"]["sum"]["result"] == {"sum": 6.5}
    assert done["output"]["say"]["result"] == {"result": "sum is 6.5"}

    failing = await run(api, [{"name": "boom", "tool": "testmcp.fail", "params": {"reason": "no such file"}}])
    assert failing["status"] == "failed" and "no such file" in failing["error"], failing["error"]


async def test_an_mcp_server_over_streamable_http_is_listed_and_called(api: Api) -> None:
    listing = await api.request("GET", "/api/v1/workflows/schema", role="viewer")
    assert listing.status_code == 200, listing.text
    tools = {tool["name"]: tool for tool in listing.json()["tools"]}
    assert {"httpmcp.add", "httpmcp.echo", "httpmcp.fail"} <= set(tools)
    assert tools["httpmcp.add"]["params"]["required"] == ["a", "b"]
    assert listing.json()["unavailable_mcp_servers"] == {}

    done = await run(
        api,
        [
            {"name": "sum", "tool": "httpmcp.add", "params": {"a": "${input.a}", "b": 0.5}},
            {"name": "say", "tool": "httpmcp.echo", "params": {"text": "over http: ${sum.result.sum}"}},
        ],
        {"a": 2},
    )
    assert done["status"] == "completed", done
    assert done["output"]["sum"]["result"] == {"sum": 2.5}
    assert done["output"]["say"]["result"] == {"result": "over http: 2.5"}


async def test_a_failed_execution_is_found_in_temporal_by_its_search_attributes(
    api: Api, temporal_client: Client
) -> None:
    """Decision 0014: a business failure completes the workflow; the Trellis search attributes find it."""
    from tests.support.api import eventually
    from tests.support.steps import create, execute, finished, workflow

    name = unique_name("findme")
    await create(api, workflow(name, [{"name": "boom", "tool": "testmcp.fail", "params": {"reason": "no"}}]))
    done = await finished(api, (await execute(api, name))["id"])
    assert done["status"] == "failed"
    query = f"TrellisStepWorkflow = '{name}' AND TrellisInstanceStatus = 'failed'"

    async def found() -> list[str]:
        return [w.id async for w in temporal_client.list_workflows(query)]

    assert await eventually(found) == [f"step-execution-{done['id']}"]
