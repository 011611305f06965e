"""The semantic checks of a step workflow, beyond its JSON shape (core/steps/definition.py):

* step names unique (the pattern is the shape's), variables unique and not ``input`` / ``context``;
* each tool known (a Trellis tool, or ``<server>.<tool>`` of a declared MCP server);
* params valid against the tool's input model or schema where their types are known (a value that is
  or holds a reference is only known when resolved, so it is checked then);
* ``http.request`` urls with a literal scheme, host and port (data never chooses where a request goes);
* references only to input, context or an earlier step's variable;
* a CEL ``if`` that compiles within the cost bounds rule conditions have.

Each problem names its path as ``steps[1].tool``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from core.automation.conditions import ConditionError, compile_condition
from core.platform.contracts import field_path
from core.steps.catalogue import ToolEntry
from core.steps.definition import Step, WorkflowDefinition
from core.steps.mcp import McpUnavailable
from core.steps.references import REFERENCE, is_reference, references, root_of

ROOTS = ("input", "context")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


def _at(value: Any, loc: tuple[int | str, ...] | list[Any]) -> Any:
    """The value at ``loc`` in the params, or a reference string on the way there (else None)."""
    for part in loc:
        if is_reference(value):
            return value
        if isinstance(value, dict) and isinstance(part, str) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return None
    return value


def is_whole_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE.fullmatch(value) is not None


def condition_is_reference(expression: str) -> bool:
    return is_whole_reference(expression.strip())


def _params(step: Step, entry: ToolEntry, prefix: str) -> list[Problem]:
    problems: list[Problem] = []
    if entry.params_model is not None:
        try:
            entry.params_model.model_validate(step.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err.get("loc", ()))
                if err.get("type") != "missing" and is_reference(_at(step.params, loc)):
                    continue  # a reference's type is checked when it is resolved
                if not loc and any(is_reference(v) for v in step.params.values()):
                    continue  # a whole-model rule over values not known yet
                problems.append(Problem(field_path(loc, prefix), err.get("msg", "invalid value")))
    else:
        try:
            validator = Draft202012Validator(entry.params_schema or {"type": "object"})
            for error in validator.iter_errors(step.params):
                loc = tuple(error.absolute_path)
                if error.validator != "required" and is_reference(_at(step.params, loc)):
                    continue
                problems.append(Problem(field_path(loc, prefix), error.message))
        except SchemaError:
            pass  # the server's schema is its own affair; the server checks its arguments
    return problems


def _http_url(step: Step, prefix: str) -> list[Problem]:
    url = step.params.get("url")
    if not isinstance(url, str):
        return []
    origin = url.split("/", 3)[:3]
    if "${" in "/".join(origin) or is_whole_reference(url):
        return [
            Problem(
                f"{prefix}.url",
                "the scheme, host and port of a url are written in the definition; references may fill only "
                "its path and query",
            )
        ]
    if not urlsplit(url).hostname:
        return [Problem(f"{prefix}.url", "url must be an absolute http:// or https:// URL")]
    return []


async def check(definition: WorkflowDefinition, lookup: Callable[[str], Awaitable[ToolEntry | None]]) -> list[Problem]:
    problems: list[Problem] = []
    seen_names: set[str] = set()
    variables: set[str] = set()
    for index, step in enumerate(definition.steps):
        at = f"steps[{index}]"
        if step.name in seen_names:
            problems.append(Problem(f"{at}.name", f"step name '{step.name}' is used by an earlier step"))
        seen_names.add(step.name)
        if step.variable in ROOTS:
            problems.append(
                Problem(f"{at}.assign", f"'{step.variable}' is reserved for the execution's {step.variable}")
            )
        elif step.assign and step.assign in variables:
            problems.append(Problem(f"{at}.assign", f"variable '{step.assign}' is assigned by an earlier step"))

        known = {*ROOTS, *variables}
        for where, value in ((f"{at}.params", step.params), (f"{at}.if", step.if_)):
            for reference in references(value):
                if root_of(reference) not in known:
                    problems.append(
                        Problem(
                            where,
                            f"${{{reference}}} refers to '{root_of(reference)}', which is not input, context or an "
                            "earlier step",
                        )
                    )
        if step.if_ is not None and not condition_is_reference(step.if_):
            try:
                compile_condition(step.if_)
            except ConditionError as exc:
                problems.append(Problem(f"{at}.if", str(exc)))

        try:
            entry = await lookup(step.tool)
        except McpUnavailable as exc:
            problems.append(Problem(f"{at}.tool", f"'{step.tool}' cannot be checked: {exc}"))
            entry = None
        else:
            if entry is None:
                problems.append(
                    Problem(
                        f"{at}.tool",
                        f"unknown tool '{step.tool}'; GET /api/v1/workflows/schema lists the tools (Trellis tools, "
                        "and <server>.<tool> for the MCP servers the settings declare)",
                    )
                )
        if entry is not None:
            problems += _params(step, entry, f"{at}.params")
            if entry.name == "http.request":
                problems += _http_url(step, f"{at}.params")
        variables.add(step.variable)
        if step.assign:
            variables.add(step.name)
    return problems
