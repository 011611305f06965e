"""API key parsing: malformed TRELLIS_API_KEYS fails at start with a message naming the entry."""

from __future__ import annotations

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from core.platform.embedded import sqlalchemy_url
from core.platform.settings import Settings, parse_api_keys
from worker import workflow_runner


def test_parses_token_role_and_optional_name() -> None:
    keys = parse_api_keys("aaaaaaaaaaaaaaaa:admin, bbbbbbbbbbbbbbbb:viewer:dash-board,")
    assert [(k.role, k.name) for k in keys] == [("admin", "admin-1"), ("viewer", "dash-board")]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("aaaaaaaaaaaaaaaa", "entry 1 must look like 'token:role'"),
        ("aaaaaaaaaaaaaaaa:root", "role 'root'; use one of admin, operator, approver, viewer"),
        ("short:admin", "at least 16 characters"),
        ("aaaaaaaaaaaaaaaa:admin,x:y:z:w", "entry 2 must look like"),
    ],
)
def test_rejects_malformed_entries(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_api_keys(raw)


def test_pgserver_uri_becomes_an_sqlalchemy_url() -> None:
    assert (
        sqlalchemy_url("postgresql://postgres:@/postgres?host=/tmp/pg")
        == "postgresql+psycopg://postgres@/postgres?host=/tmp/pg"
    )
    assert sqlalchemy_url("postgresql://u:@db:5433/x") == "postgresql+psycopg://u@db:5433/x"


def test_the_suite_runs_workflows_in_the_sandbox_and_the_worker_does_not_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The suite's workers check every workflow path they run for non-deterministic calls (tests/__init__);
    the worker's default runs without the sandbox (decision 0026)."""
    assert isinstance(workflow_runner(Settings()), SandboxedWorkflowRunner)
    monkeypatch.delenv("TRELLIS_WORKFLOW_SANDBOX")
    assert isinstance(workflow_runner(Settings()), UnsandboxedWorkflowRunner)
