"""Templated action values (``{{customer.email}}``, ``{{entity.name}}``) rendered by Jinja2's
sandboxed environment: no attribute access to internals, no imports, and a missing value is an error
with a clear message instead of an empty string."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class TemplateRenderError(ValueError):
    pass


@lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    try:
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"template {source!r} does not parse: {exc.message}") from exc


def check_template(source: str) -> None:
    """Validate at save time (syntax only; values are known at run time)."""
    _compile(source)


def render(source: str, context: dict[str, Any]) -> str:
    try:
        return str(_compile(source).render(**context))
    except UndefinedError as exc:
        raise TemplateRenderError(f"template {source!r} refers to a missing value: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateRenderError(f"template {source!r} tried something unsafe: {exc}") from exc


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a JSON value; other values pass through."""
    if isinstance(value, str):
        return render(value, context) if "{{" in value or "{%" in value else value
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    return value


def check_value(value: Any) -> None:
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            check_template(value)
    elif isinstance(value, list):
        for v in value:
            check_value(v)
    elif isinstance(value, dict):
        for v in value.values():
            check_value(v)


def entity_view(entity: dict[str, Any] | None) -> dict[str, Any] | None:
    """An entity for templates: its fields at the top level (``customer.email``) under the
    entity's own attributes (``id``, ``name``, ``status``, ``entity_type``), which win on a clash."""
    if entity is None:
        return None
    return {
        **entity.get("fields", {}),
        **{k: v for k, v in entity.items() if k != "fields"},
        "fields": entity.get("fields", {}),
    }


def build_context(
    entity: dict[str, Any] | None,
    old: dict[str, Any] | None,
    event: dict[str, Any],
    related: dict[str, list[dict[str, Any]]],
    rule: dict[str, Any],
) -> dict[str, Any]:
    """Template context: ``entity``, ``old``, ``event``, ``rule``, and each related entity by its
    type (parents first, so a quote's ``customer`` is its parent customer), e.g. ``{{customer.email}}``."""
    context: dict[str, Any] = {}
    for child in related.get("children", []):
        context.setdefault(child["entity_type"], entity_view(child))
    for parent in related.get("parents", []):
        context[parent["entity_type"]] = entity_view(parent)
    if entity is not None:
        context.setdefault(entity["entity_type"], entity_view(entity))
    context.update(entity=entity_view(entity), old=entity_view(old), event=event, rule=rule)
    return context
