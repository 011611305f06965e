"""Templated action values (``{{customer.email}}``, ``{{entity.name}}``) written by an admin in a rule.

Only what an admin authored is a template; entity values, names and event payloads are inserted as
values and never rendered. Templates are bounded:

* at save, the template is parsed and its syntax tree allowed only lookups (names, attribute and item
  access), literals, a list of safe filters with short literal or looked-up arguments, comparisons,
  ``+ - / // %`` involving a looked-up value, and ``if`` / one level of ``for`` over context values: no
  arithmetic on literals alone, no ``*`` or ``**``, no calls (so no ``range``), no assignments,
  macros, includes or blocks. So compiling it cannot fold a huge constant, and rendering it cannot
  compute one;
* it renders in Jinja2's ``ImmutableSandboxedEnvironment`` with strict undefined values (a missing value
  is an error that names it, not an empty string);
* its output is capped while it renders (``max_chars``), and compiled templates sit in a bounded cache.

URL templates render each value percent-encoded, so a value can never add a path segment, a query
parameter, credentials or a host.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEMPLATE_NODES = 300
MAX_TEMPLATE_DEPTH = 24
MAX_LITERAL_CHARS = 500
MAX_FILTER_ARGUMENT_CHARS = 32  # a long separator for join over a long list would multiply the output
DEFAULT_MAX_OUTPUT_CHARS = 64 * 1024

SAFE_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "d",
        "default",
        "first",
        "float",
        "int",
        "join",
        "last",
        "length",
        "lower",
        "round",
        "string",
        "title",
        "tojson",
        "trim",
        "truncate",
        "upper",
        "urlencode",
    }
)
_SAFE_TESTS = frozenset({"defined", "undefined", "none", "string", "number", "mapping", "sequence"})

# Node types a template may contain; everything else (calls, arithmetic, assignments, macros,
# includes, imports, blocks, call blocks, filter blocks, with) is refused at save.
_ALLOWED = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Const,
    nodes.List,
    nodes.Tuple,
    nodes.Filter,
    nodes.Test,
    nodes.If,
    nodes.For,
    nodes.CondExpr,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.Keyword,
    nodes.Add,
    nodes.Sub,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Neg,
    nodes.Pos,
)
# Arithmetic is allowed on looked-up values only (``entity.n + 1``): an operation whose operands are all
# literals would be folded while compiling. Multiplication and powers are refused: they turn a small
# value into a huge one ('a' * n).
_ARITHMETIC = (nodes.BinExpr,)

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_URL_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, finalize=lambda value: quote(str(value), safe="")
)


class TemplateRenderError(ValueError):
    pass


def _check_tree(source: str, tree: nodes.Node) -> None:
    count = 0

    def visit(node: nodes.Node, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_TEMPLATE_NODES:
            raise TemplateRenderError(f"template {source[:60]!r} is too large (over {MAX_TEMPLATE_NODES} parts)")
        if depth > MAX_TEMPLATE_DEPTH:
            raise TemplateRenderError(f"template {source[:60]!r} is nested deeper than {MAX_TEMPLATE_DEPTH} levels")
        if not isinstance(node, _ALLOWED):
            raise TemplateRenderError(
                f"template {source[:60]!r} uses '{type(node).__name__}', which templates may not: only lookups "
                "(name.field, name['key']), literals, safe filters, comparisons and if/for over values are allowed"
            )
        if isinstance(node, _ARITHMETIC) and not any(True for _ in node.find_all((nodes.Name, nodes.Getattr))):
            raise TemplateRenderError(
                f"template {source[:60]!r} computes with literals only ('{type(node).__name__}'); "
                "arithmetic must involve a looked-up value"
            )
        if isinstance(node, nodes.Filter) and node.name not in SAFE_FILTERS:
            raise TemplateRenderError(
                f"template {source[:60]!r} uses the filter '{node.name}'; allowed filters: "
                + ", ".join(sorted(SAFE_FILTERS))
            )
        if isinstance(node, nodes.Test) and node.name not in _SAFE_TESTS:
            raise TemplateRenderError(f"template {source[:60]!r} uses the test '{node.name}'")
        if isinstance(node, nodes.Filter | nodes.Test) and (node.dyn_args is not None or node.dyn_kwargs is not None):
            raise TemplateRenderError(f"template {source[:60]!r} passes *args or **kwargs to '{node.name}'")
        if isinstance(node, nodes.For) and (node.recursive or any(True for _ in node.find_all(nodes.For))):
            raise TemplateRenderError(f"template {source[:60]!r} nests loops; one level of 'for' is allowed")
        if isinstance(node, nodes.Filter):
            for argument in [*node.args, *(k.value for k in node.kwargs)]:
                if isinstance(argument, nodes.Const) and len(str(argument.value)) > MAX_FILTER_ARGUMENT_CHARS:
                    raise TemplateRenderError(
                        f"template {source[:60]!r}: arguments of '{node.name}' are limited to "
                        f"{MAX_FILTER_ARGUMENT_CHARS} characters"
                    )
        private = (isinstance(node, nodes.Getattr) and node.attr.startswith("_")) or (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and str(node.arg.value).startswith("_")
        )
        if private:
            raise TemplateRenderError(f"template {source[:60]!r} reaches for an internal attribute")
        if isinstance(node, nodes.Const) and isinstance(node.value, str) and len(node.value) > MAX_LITERAL_CHARS:
            raise TemplateRenderError(f"template {source[:60]!r} has a literal longer than {MAX_LITERAL_CHARS}")
        for child in node.iter_child_nodes():
            visit(child, depth + 1)

    visit(tree, 0)


@lru_cache(maxsize=256)
def _parsed(source: str) -> None:
    """Parse and check the tree (cheap, linear in the source): what a save validates."""
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"template {source[:60]!r} does not parse: {exc.message}") from exc
    except RecursionError as exc:
        raise TemplateRenderError(f"template {source[:60]!r} is nested too deeply") from exc
    _check_tree(source, tree)


@lru_cache(maxsize=256)
def _compiled(source: str, url: bool) -> Any:
    _parsed(source)
    return (_URL_ENV if url else _ENV).from_string(source)


def check_template(source: str) -> None:
    """Validate at save time: syntax and the allowed constructs (values are known at run time)."""
    _parsed(source)


def compile_template(source: str) -> None:
    """Compile (after the checks); callers run it off the event loop with a time limit."""
    _compiled(source, False)


def render(
    source: str, context: dict[str, Any], *, max_chars: int = DEFAULT_MAX_OUTPUT_CHARS, url: bool = False
) -> str:
    """Render, stopping as soon as the output passes ``max_chars``."""
    template = _compiled(source, url)
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > max_chars:
                raise TemplateRenderError(f"template {source[:60]!r} renders more than {max_chars} characters")
            parts.append(chunk)
    except UndefinedError as exc:
        raise TemplateRenderError(f"template {source!r} refers to a missing value: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateRenderError(f"template {source!r} tried something unsafe: {exc}") from exc
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, TemplateRenderError):
            raise
        raise TemplateRenderError(f"template {source!r} could not be rendered: {exc}") from exc
    return "".join(parts)


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def render_value(value: Any, context: dict[str, Any], *, max_chars: int = DEFAULT_MAX_OUTPUT_CHARS) -> Any:
    """Render every string inside an admin-authored JSON value; other values pass through."""
    if isinstance(value, str):
        return render(value, context, max_chars=max_chars) if is_template(value) else value
    if isinstance(value, list):
        return [render_value(v, context, max_chars=max_chars) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, context, max_chars=max_chars) for k, v in value.items()}
    return value


def check_value(value: Any) -> None:
    if isinstance(value, str):
        if is_template(value):
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
