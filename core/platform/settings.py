"""Settings: the one place Trellis reads its configuration from the environment.

Every value has an embedded default, so `make run` works on a fresh machine. Pointing
``TRELLIS_DATABASE_URL`` at any Postgres, or ``TRELLIS_TEMPORAL_ADDRESS`` at any Temporal
server, makes the launcher use those instead of starting the embedded ones.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.platform.standard_webhooks import decode_secret

ROLES: tuple[str, ...] = ("admin", "operator", "approver", "viewer")


class ApiKey:
    """One configured API key: the token, its role and the name recorded as the actor."""

    __slots__ = ("name", "role", "token")

    def __init__(self, token: str, role: str, name: str) -> None:
        self.token = token
        self.role = role
        self.name = name


def parse_api_keys(raw: str) -> list[ApiKey]:
    """Parse ``token:role[:name],…``; raise ValueError naming the bad entry."""
    keys: list[ApiKey] = []
    for index, entry in enumerate(part.strip() for part in raw.split(",")):
        if not entry:
            continue
        pieces = entry.split(":")
        if len(pieces) not in (2, 3) or not pieces[0] or not pieces[1]:
            raise ValueError(f"TRELLIS_API_KEYS entry {index + 1} must look like 'token:role' or 'token:role:name'")
        token, role = pieces[0], pieces[1]
        if role not in ROLES:
            raise ValueError(f"TRELLIS_API_KEYS entry {index + 1} has role '{role}'; use one of {', '.join(ROLES)}")
        if len(token) < 16:
            raise ValueError(f"TRELLIS_API_KEYS entry {index + 1}: tokens must be at least 16 characters")
        name = pieces[2] if len(pieces) == 3 and pieces[2] else f"{role}-{index + 1}"
        if name in ROLES:
            # Assignees, approvers and escalation targets may name a principal or a role: a key named like a
            # role would get that role's work and decisions.
            raise ValueError(
                f"TRELLIS_API_KEYS entry {index + 1} is named '{name}', which is a role; name keys after people "
                f"or services (e.g. '{name}-user'): the names {', '.join(ROLES)} are reserved for roles"
            )
        keys.append(ApiKey(token=token, role=role, name=name))
    return keys


class BreakerPolicy(BaseModel):
    """A circuit breaker's thresholds for one call target (TRELLIS_BREAKER_TARGETS)."""

    model_config = ConfigDict(extra="forbid")

    failures: int = Field(ge=1, le=1000)
    cooldown_seconds: float = Field(gt=0, le=86_400)


class ModelPrice(BaseModel):
    """What one model costs, in USD per 1,000 tokens (TRELLIS_LLM_PRICES)."""

    model_config = ConfigDict(extra="forbid")

    input_per_1k: float = Field(ge=0, le=1000)
    output_per_1k: float = Field(ge=0, le=1000)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens / 1000 * self.input_per_1k + completion_tokens / 1000 * self.output_per_1k


class McpServer(BaseModel):
    """One MCP server: a command started over stdio, or a streamable-HTTP URL (exactly one of them)."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict, description="Environment of a stdio server")
    url: str | None = None
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers sent to a URL server; a value 'secret:<name>' is the secret of that name in "
        "TRELLIS_WEBHOOK_SECRETS, resolved when connecting",
    )
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server has either a command (stdio) or a url (streamable HTTP)")
        if self.headers and self.url is None:
            raise ValueError("headers are for a URL server; a stdio server takes env")
        return self


# The local-model profile (TRELLIS_LLM_PROFILE=local). The time limit stays under the five minutes a
# session gives one agent call's activity, so the HTTP call times out first and says so.
LOCAL_LLM_TIMEOUT_SECONDS = 240.0
LOCAL_LLM_MAX_OUTPUT_TOKENS = 1024


class Settings(BaseSettings):
    """Trellis settings, read from ``TRELLIS_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="TRELLIS_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".trellis"),
        description="Folder for the embedded Temporal (SQLite) and Postgres data; kept across restarts.",
    )
    database_url: str | None = Field(
        default=None,
        description="Postgres URL (postgresql://… or postgresql+psycopg://…). Unset: the launcher starts pgserver.",
    )
    temporal_address: str | None = Field(
        default=None, description="host:port of a Temporal frontend. Unset: the launcher starts a dev server."
    )
    temporal_namespace: str = "default"
    task_queue: str = "trellis"
    workflow_sandbox: bool = Field(
        default=False,
        description="Run workflows in Temporal's sandbox, which refuses non-deterministic calls (time, random, "
        "I/O) in workflow code. Off in the worker by default: it cost a quarter of the worker's CPU under load "
        "(decision 0026); the test suite turns it on, so every workflow path the tests drive is checked",
    )
    worker_cached_workflows: int = Field(
        default=1000,
        ge=0,
        le=100_000,
        description="Workflows a worker keeps in memory between tasks (Temporal's sticky cache); 0: none, "
        "every task replays its history (less memory, more CPU)",
    )
    temporal_ui_port: int = 8233
    temporal_port: int = 7233
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys: str = Field(default="", description="Comma-separated token:role[:name] entries.")
    max_body_bytes: int = Field(default=256 * 1024, description="Requests with larger bodies get 413.")
    entity_max_fields: int = Field(default=500, ge=1, le=100_000, description="Fields one entity may have")
    entity_max_bytes: int = Field(default=256 * 1024, ge=1024, description="Bytes of fields one entity may hold")
    rate_limit: str = Field(default="6000/minute", description="Requests per API key (moving window), then 429")
    rate_limit_session_starts: str = Field(default="30/minute", description="Agent session starts per API key")
    llm_tokens_per_key_per_day: int = Field(
        default=5_000_000, ge=0, description="LLM tokens the sessions started by one API key may use per day"
    )
    session_default_token_budget: int | None = Field(
        default=500_000, ge=100, description="Token budget of a session that names none (unset: no budget)"
    )
    payload_keys: str = Field(
        default="",
        description="'id:<base64 32 bytes>,…': Temporal payloads encrypted with the first, decrypted with any. "
        "`make run` creates one in the data folder when unset.",
    )
    names_in_temporal: bool = Field(
        default=True,
        description="Put customer names and session goals in search attributes and run summaries (which no "
        "codec can encrypt); false keeps them out",
    )
    console_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="How long a console sign-in lasts (sign-out ends it at once)"
    )
    codec_cors_origins: str | None = Field(
        default=None,
        description="Origins (the Temporal UI) allowed to call /codec/* from a browser, comma-separated; unset: "
        "the embedded UI's, http://127.0.0.1:<TRELLIS_TEMPORAL_UI_PORT> and http://localhost:<port>",
    )
    temporal_answer_seconds: float = Field(
        default=60.0, gt=0, le=600, description="How long the API waits for a start or an update to be answered"
    )
    search_attributes: bool = Field(
        default=True,
        description="Set Trellis's custom search attributes on runs. Turn off only for a Temporal server "
        "that cannot register custom ones (the time-skipping test server).",
    )

    # Automation
    automation_max_depth: int = Field(default=5, ge=1, le=50, description="Longest causation chain of rules")
    dispatcher_poll_seconds: float = Field(default=1.0, gt=0, description="Outbox poll when no NOTIFY arrives")
    condition_timeout_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Time one rule condition may take; over it the rule is skipped"
    )
    condition_max_input_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest event a condition is evaluated over; larger: skipped"
    )
    webhook_allow_hosts: str = Field(
        default="", description="Comma-separated hosts or CIDRs webhooks may reach although not public"
    )
    webhook_secrets: dict[str, str] = Field(
        default_factory=dict,
        description='Secrets webhook headers may name as "secret:<name>", as JSON: {"crm_token": "Bearer …"}',
    )
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=0, description="Read at most this of an answer")
    template_max_output_chars: int = Field(default=64 * 1024, ge=1024, description="Longest rendered template value")
    webhook_public_destinations: bool = Field(
        default=True, description="Webhooks may reach public addresses; false: only TRELLIS_WEBHOOK_ALLOW_HOSTS"
    )
    webhook_max_attempts: int = Field(default=6, ge=1, le=50)
    webhook_initial_retry_seconds: float = Field(default=1.0, gt=0)
    webhook_max_retry_seconds: float = Field(default=300.0, gt=0)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "trellis@localhost"

    # LLM (agent sessions); nothing else in Trellis needs one
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint, e.g. http://host:8000/v1")
    llm_api_key: str | None = None
    llm_model: str = Field(default="gpt-4o-mini", description="Default model for agents without their own")
    llm_profile: Literal["hosted", "local"] = Field(
        default="hosted",
        description="local: defaults for a model generating on this machine's CPU (llama.cpp, Ollama): "
        f"{LOCAL_LLM_TIMEOUT_SECONDS:.0f} s per call and {LOCAL_LLM_MAX_OUTPUT_TOKENS} output tokens at most, "
        "unless TRELLIS_LLM_TIMEOUT_SECONDS / TRELLIS_LLM_MAX_OUTPUT_TOKENS are set",
    )
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=280, description="one call's time limit")
    llm_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description='Prices per model for the cost of each call, as JSON: {"gpt-4o-mini": {"input_per_1k": 0.00015, '
        '"output_per_1k": 0.0006}}. A model not listed costs 0 and is reported as unpriced.',
    )
    llm_max_output_tokens: int = Field(default=4096, ge=16, description="max_tokens of one agent call, at most")
    llm_response_format: Literal["auto", "json_schema", "json_object_schema", "json_object"] = Field(
        default="auto",
        description="How an agent's output schema reaches the endpoint: json_schema (the OpenAI standard), "
        "json_object_schema (json_object with a schema field, as llama.cpp's server takes it), json_object (the "
        "schema in the prompt only); auto sends json_schema and, where an endpoint refuses it, falls back once "
        "to json_object for that endpoint and model",
    )
    session_history_limit: int = Field(
        default=2000, ge=20, description="Workflow history events after which a session continues as new"
    )
    session_max_tool_calls: int = Field(
        default=50, ge=1, le=10_000, description="Tool calls a session's acting agents may make in all"
    )

    # Process intelligence (issue 26)
    forecast_min_visits: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="Recorded stays of a state below which its forecast leans on the template and says uncertain",
    )
    forecast_model_seconds: float = Field(
        default=300, ge=0, le=86_400, description="How long a template version's forecast model is reused"
    )
    forecast_watch_seconds: int = Field(
        default=900,
        ge=60,
        le=86_400,
        description="How often the forecast watch refreshes every running instance's forecast and early warnings",
    )

    # Step workflows
    mcp_servers: dict[str, McpServer] = Field(
        default_factory=dict,
        description='MCP servers whose tools steps may call as <server>.<tool>, as JSON: {"files": {"command": '
        '["python", "server.py"]}, "docs": {"url": "https://mcp.example.com/mcp"}}. A URL must pass the webhook '
        "address policy.",
    )
    mcp_list_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long a server's tools/list answer is reused when validating and calling"
    )
    steps_history_limit: int = Field(
        default=5000, ge=50, description="Workflow history events after which a step execution continues as new"
    )
    steps_max_depth: int = Field(default=5, ge=1, le=20, description="How deeply workflow.run steps may nest")
    steps_max_spawned: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Executions one top-level run and its descendants may start through workflow.run, in total",
    )
    event_sources: dict[str, str] = Field(
        default_factory=dict,
        description="Sources of external events (POST /api/v1/events/{source}) and their Standard Webhooks "
        'secrets, as JSON: {"zendesk": "whsec_<base64>"}. A source not declared takes no events.',
    )
    event_tolerance_seconds: int = Field(
        default=300, ge=10, le=3600, description="How far an event's webhook-timestamp may be from now"
    )
    breaker_failures: int = Field(
        default=5, ge=1, le=1000, description="Consecutive transient failures of a tool target that open its breaker"
    )
    breaker_cooldown_seconds: float = Field(
        default=30.0, gt=0, le=86_400, description="How long an open breaker fails calls before it half-opens"
    )
    breaker_targets: dict[str, BreakerPolicy] = Field(
        default_factory=dict,
        description='Thresholds of particular targets, as JSON: {"http:https://api.example.com:443": {"failures": 3, '
        '"cooldown_seconds": 10}}',
    )

    # Observability
    metrics_bind: str | None = Field(
        default="127.0.0.1:0",
        pattern=r"^([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):[0-9]{1,5}$|^$",
        description="Where the worker serves Prometheus /metrics (host:port; port 0 picks a free one, logged); "
        "empty turns it off. The API serves its own at /metrics.",
    )
    tracing: bool = Field(
        default=False,
        description="OpenTelemetry tracing: one trace from the HTTP request through the workflow to its activities",
    )
    tracing_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint spans are exported to (e.g. http://127.0.0.1:4318/v1/traces)"
    )

    @model_validator(mode="after")
    def _llm_profile(self) -> Settings:
        # A CPU model writes a few tokens a second: the hosted defaults (60 s, 4,096 tokens) time it out
        # and regenerate six times. Explicit settings win over the profile.
        if self.llm_profile == "local":
            if "llm_timeout_seconds" not in self.model_fields_set:
                self.llm_timeout_seconds = LOCAL_LLM_TIMEOUT_SECONDS
            if "llm_max_output_tokens" not in self.model_fields_set:
                self.llm_max_output_tokens = LOCAL_LLM_MAX_OUTPUT_TOKENS
        return self

    @model_validator(mode="after")
    def _mcp_secrets(self) -> Settings:
        for name, server in self.mcp_servers.items():
            for header, value in server.headers.items():
                secret = value.removeprefix("secret:") if value.startswith("secret:") else None
                if secret is not None and secret not in self.webhook_secrets:
                    raise ValueError(
                        f"TRELLIS_MCP_SERVERS: header '{header}' of '{name}' names the secret '{secret}', which "
                        "TRELLIS_WEBHOOK_SECRETS does not define"
                    )
        return self

    @field_validator("event_sources")
    @classmethod
    def _event_sources(cls, sources: dict[str, str]) -> dict[str, str]:
        for source, secret in sources.items():
            try:
                decode_secret(secret)
            except ValueError as exc:
                raise ValueError(f"TRELLIS_EVENT_SOURCES: the secret of '{source}' cannot be used: {exc}") from exc
        return sources

    @field_validator("api_keys")
    @classmethod
    def _api_keys(cls, raw: str) -> str:
        parse_api_keys(raw)  # refused when the settings load, not at the first request
        return raw

    def codec_origins(self) -> list[str]:
        """The browser origins allowed to call /codec/*: the setting's, or the embedded Temporal UI's."""
        if self.codec_cors_origins is not None:
            return [o.strip() for o in self.codec_cors_origins.split(",") if o.strip()]
        return [f"http://127.0.0.1:{self.temporal_ui_port}", f"http://localhost:{self.temporal_ui_port}"]

    def cost_of(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """A call's cost from the price table; 0 for a model it does not list."""
        price = self.llm_prices.get(model)
        return price.cost(prompt_tokens, completion_tokens) if price else 0.0

    def breaker_policy(self, target: str) -> tuple[int, float]:
        """(failures, cool-down seconds) of a target's breaker: its own, or the defaults."""
        own = self.breaker_targets.get(target)
        return (own.failures, own.cooldown_seconds) if own else (self.breaker_failures, self.breaker_cooldown_seconds)

    def allow_list(self) -> list[str]:
        return [h for h in self.webhook_allow_hosts.split(",") if h.strip()]

    def parsed_api_keys(self) -> list[ApiKey]:
        return parse_api_keys(self.api_keys)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
