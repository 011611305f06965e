"""Metrics and traces: one Temporal runtime per process whose Prometheus exporter serves the SDK's own
metrics (workflow and activity task latencies, polls, failures, request counts) and Trellis's counters
together, and OpenTelemetry tracing through temporalio.contrib.opentelemetry when TRELLIS_TRACING is on.

Trellis's counters are created on the meter of whoever counts (an activity's meter adds its activity
type and task queue as labels; the API's is the runtime's), and counted where the write they describe
commits for the first time, so a retried activity does not count twice."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from temporalio.client import Interceptor
from temporalio.common import MetricMeter
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.platform.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    """A Trellis metric's name and help text (the exporter adds _total to a counter's name)."""

    name: str
    description: str


TRANSITIONS = Metric("trellis_transitions", "Process state transitions recorded (label: template)")
INSTANCES_FINISHED = Metric("trellis_instances_finished", "Process instances finished (labels: template, outcome)")
RULE_EXECUTIONS = Metric(
    "trellis_rule_executions", "Automation rule executions by outcome (labels: entity_type, outcome)"
)
WEBHOOK_DELIVERIES = Metric(
    "trellis_webhook_deliveries", "Webhook actions delivered or dead-lettered (labels: entity_type, outcome)"
)
LLM_TOKENS = Metric("trellis_llm_tokens", "LLM tokens of agent calls that ended (labels: agent, model, kind)")
LLM_CALLS = Metric("trellis_llm_calls", "Agent calls by outcome (labels: agent, model, outcome)")
INBOX_OPENED = Metric("trellis_inbox_items_opened", "Inbox items opened for someone to act on (label: kind)")
INBOX_DECIDED = Metric("trellis_inbox_items_decided", "Inbox items decided (labels: kind, action)")
LLM_COST = Metric("trellis_llm_cost_usd", "Cost of each completed agent call, USD (histogram; labels: agent, model)")


def count(meter: MetricMeter, counter: Metric, attributes: Mapping[str, str], value: int = 1) -> None:
    if value > 0:  # a counter only goes up; nothing to add is not an error worth failing the caller
        meter.create_counter(counter.name, counter.description).add(value, attributes)


def observe_cost(meter: MetricMeter, attributes: Mapping[str, str], usd: float) -> None:
    meter.create_histogram_float(LLM_COST.name, LLM_COST.description, "USD").record(usd, attributes)


_runtime: Runtime | None = None
_metrics_address: str | None = None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def runtime(settings: Settings) -> Runtime:
    """The process's Temporal runtime (made once): with a Prometheus exporter on TRELLIS_METRICS_BIND
    (port 0: a free port, logged), or without one when the setting is empty."""
    global _runtime, _metrics_address
    if _runtime is None:
        metrics = None
        if settings.metrics_bind:
            host, _, port = settings.metrics_bind.rpartition(":")
            address = f"{host}:{port if port != '0' else _free_port(host)}"
            metrics = PrometheusConfig(bind_address=address, counters_total_suffix=True)
            _metrics_address = address
            logger.info("Prometheus metrics at http://%s/metrics", address)
        _runtime = Runtime(telemetry=TelemetryConfig(metrics=metrics))
    return _runtime


def metrics_address() -> str | None:
    """host:port of this process's Prometheus exporter, once the runtime exists (None: off)."""
    return _metrics_address


def process_meter() -> MetricMeter:
    """The meter of this process's runtime (the API's counters; the dispatcher's), or a no-op one
    before the runtime exists."""
    return _runtime.metric_meter if _runtime is not None else MetricMeter.noop


_tracing_ready = False


def interceptors(settings: Settings) -> list[Interceptor]:
    """The tracing interceptor when TRELLIS_TRACING is on (spans exported over OTLP/HTTP when an
    endpoint is set; otherwise to whatever tracer provider the process installed), else none."""
    global _tracing_ready
    if not settings.tracing:
        return []
    if not _tracing_ready and settings.tracing_otlp_endpoint:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "trellis"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.tracing_otlp_endpoint)))
        trace.set_tracer_provider(provider)
    _tracing_ready = True
    return [TracingInterceptor()]
