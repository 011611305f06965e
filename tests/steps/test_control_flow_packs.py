"""The seed 004 packs end to end, their host pointed at the test receiver: the parallel build, the
approval workflow (approved and rejected through the inbox), and the complex integration (validation
retried, a sync escalated and aborted, the transformation rolled back once)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from core.steps.packs import WORKFLOW_PACKS
from tests.steps.test_tasks import decide, task_for
from tests.support.api import Api
from tests.support.servers import WebhookServer
from tests.support.steps import create, execute, finished, steps_by_name, unique_name


async def pack(api: Api, name: str, webhook_server: WebhookServer) -> str:
    raw = (WORKFLOW_PACKS / f"{name}.json").read_text()
    definition = json.loads(raw.replace("https://ops.example.com", f"http://127.0.0.1:{webhook_server.port}"))
    copy = unique_name(name[:20])
    await create(api, {**definition, "name": copy})
    return copy


async def test_pack_parallel_build(api: Api, webhook_server: WebhookServer) -> None:
    name = await pack(api, "parallel_build", webhook_server)
    project = uuid.uuid4().hex[:8]
    for step in ("design-ui", "design-api"):
        webhook_server.respond(f"/{step}/{project}", {"design": step})
    webhook_server.respond(f"/implement-frontend/{project}", {"built": "frontend"})
    webhook_server.respond(f"/implement-backend/{project}", {"built": "backend"})
    done = await finished(api, (await execute(api, name, {"project": project}))["id"])
    assert done["status"] == "completed", done["error"]
    assert json.loads(webhook_server.at(f"/implement-frontend/{project}")[0].body) == {
        "design": {"design": "design-ui"}
    }
    tests = json.loads(webhook_server.at(f"/integration-test/{project}")[0].body)
    assert tests == {"frontend": {"built": "frontend"}, "backend": {"built": "backend"}}
    records = steps_by_name(done)
    assert records["integration_testing"]["started_ts"] >= max(
        records["implement_frontend"]["finished_ts"], records["implement_backend"]["finished_ts"]
    )


@pytest.mark.parametrize("approve", [True, False])
async def test_pack_approval_workflow(api: Api, webhook_server: WebhookServer, approve: bool) -> None:
    name = await pack(api, "approval_workflow", webhook_server)
    request = f"new printer {uuid.uuid4().hex[:6]}"
    requester = f"req-{uuid.uuid4().hex[:6]}"
    started = await execute(api, name, {"request": request, "requester": requester})
    item = await task_for(api, "approver", f"Review: {request}")
    body: dict[str, Any] = {"action": "approve" if approve else "reject", "comment": "budget is gone"}
    assert (await decide(api, item, "approver", **body)).status_code == 200
    done = await finished(api, started["id"])
    assert done["status"] == "completed", done["error"]
    records = steps_by_name(done)
    implemented = [h for h in webhook_server.hits if h.path == "/implement" and request in h.body.decode()]
    if approve:
        assert len(implemented) == 1 and json.loads(implemented[0].body)["approved_by"] == "approver-user"
        assert records["deploy"]["status"] == "completed" and "notify_rejection" not in records
    else:
        assert implemented == [] and "deploy" not in records
        assert records["notify_rejection"]["output"]["recipients"] == [requester]


async def test_pack_complex_integration(api: Api, webhook_server: WebhookServer) -> None:
    name = await pack(api, "complex_integration", webhook_server)
    batch = uuid.uuid4().hex[:8]
    webhook_server.respond(f"/validate/{batch}", {"valid": True}, [500, 500, 200])
    webhook_server.respond(f"/sync/{batch}", {"error": "downstream refused"}, [409])
    started = await execute(api, name, {"batch": batch, "records": [{"id": 1}]})
    item = await task_for(api, "operator", f"{name}: step 'data_sync' failed")
    assert (await decide(api, item, "operator", action="abort", comment="give up")).status_code == 200
    done = await finished(api, started["id"])
    assert done["status"] == "compensated", done
    assert "abort by operator-user" in done["error"]
    records = steps_by_name(done)
    assert records["data_validation"]["retry_count"] == 2 and len(webhook_server.at(f"/validate/{batch}")) == 3
    assert len(webhook_server.at(f"/rollback/{batch}")) == 1
    assert records["rollback_changes"]["path"] == "compensate.data_transformation"
