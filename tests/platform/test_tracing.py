"""OpenTelemetry tracing (TRELLIS_TRACING): one trace from the HTTP request that starts an instance,
through the workflow, to its activities. A second API and worker, with tracing on, on their own task
queue; spans are collected in memory by the SDK's own exporter."""

from __future__ import annotations

import uuid

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from core.platform.temporal import connect_client
from tests.support.api import Api, eventually, make_settings, open_api
from worker import build_worker, condition_evaluator


async def test_one_trace_spans_http_workflow_and_activities(
    api: Api, engine: AsyncEngine, postgres_url: str, temporal_address: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the process's first and only provider: nothing else sets one

    queue = f"traced-{uuid.uuid4().hex[:8]}"
    settings = make_settings(postgres_url, temporal_address, queue, tracing=True)
    client = await connect_client(settings)
    evaluator = condition_evaluator(settings)
    lifespan, http = await open_api(settings)
    try:
        async with build_worker(client, engine, queue, settings, evaluator):
            traced = Api(http)
            started = await traced.start("HS_STD")
            assert (await traced.transition(started["instance_id"], 1)).status_code == 200

            async def spans() -> list[str] | None:
                names = [s.name for s in exporter.get_finished_spans()]
                return names if any(n.startswith("RunActivity:process.enter_state") for n in names) else None

            await eventually(spans)
    finally:
        await http.aclose()
        await lifespan.__aexit__(None, None, None)
        evaluator.close()

    finished = exporter.get_finished_spans()
    request = next(s for s in finished if s.name == "POST /api/v1/workflow-instance")
    same_trace = [s for s in finished if s.context.trace_id == request.context.trace_id]
    names = {s.name for s in same_trace}
    # The client's start (an update-with-start that waits for the instance to be ready), the run, and
    # the state entry's activity: all in the request's trace.
    assert any(n.startswith("Start") and n.endswith("ProcessInstance") for n in names), names
    assert "RunWorkflow:ProcessInstance" in names, names
    assert "RunActivity:process.enter_state" in names, names
    assert all(
        s.context.trace_id == request.context.trace_id for s in finished if s.name == "RunWorkflow:ProcessInstance"
    )
