"""The semantic checks of a step workflow, beyond its JSON shape (core/steps/definition.py):

* step names unique (the pattern is the shape's), variables unique and not ``input`` / ``context``;
* each tool known (a Trellis tool, or ``<server>.<tool>`` of a declared MCP server);
* params valid against the tool's input model or schema where their types are known (a value that is
  or holds a reference is only known when resolved, so it is checked then);
* ``http.request`` urls with a literal scheme, host and port (data never chooses where a request goes), and
  ``sign`` a literal secret name (data never chooses a secret; header secrets are taken from the definition);
* references only to input, context or an earlier step's variable;
* a CEL ``if`` that compiles within the cost bounds rule conditions have.

Each problem names its path as ``steps[1].tool``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from core.automation.conditions import ConditionError, compile_condition
from core.platform.contracts import field_path
from core.platform.schemas import check_bounded_schema
from core.steps.catalogue import ToolEntry
from core.steps.definition import Step, StepWorkflowDefinition, walk
from core.steps.mcp import McpUnavailable
from core.steps.references import REFERENCE, is_reference, references, root_of

ROOTS = ("input", "context")
MIN_SCHEDULE_MS = 1000
CEL_BUDGET_SECONDS = 3.0  # compiling one definition's conditions; past it, the rest are not compiled


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


def _http_sign(step: Step, prefix: str) -> list[Problem]:
    """``sign`` names a secret, so it is written in the definition: a reference would let the execution's
    input choose which secret signs the request."""
    sign = step.params.get("sign")
    if isinstance(sign, str) and "${" in sign:
        return [Problem(f"{prefix}.sign", "sign names a secret and is written in the definition, never a reference")]
    return []


@dataclass
class _Checker:
    lookup: Callable[[str], Awaitable[ToolEntry | None]]
    event_sources: set[str] | None
    problems: list[Problem]
    started: float = field(default_factory=time.monotonic)
    out_of_time: bool = False

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def refs(self, where: str, value: Any, visible: set[str]) -> None:
        """Each reference to a name the step cannot see, at the path of the value that holds it
        (``steps[1].params.id``), so an editor can show it on that field."""
        if isinstance(value, dict):
            for key, item in value.items():
                self.refs(f"{where}.{key}", item, visible)
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.refs(f"{where}[{index}]", item, visible)
            return
        for reference in references(value):
            if root_of(reference) not in visible:
                self.problem(
                    where,
                    f"${{{reference}}} refers to '{root_of(reference)}', which is not input, context or an earlier "
                    "step (one this step waits for)",
                )

    async def cel(self, where: str, expression: str | None) -> None:
        """Compile in a thread (the API's event loop keeps serving) within the definition's time budget."""
        if expression is None or condition_is_reference(expression):
            return
        if self.out_of_time:
            return
        if time.monotonic() - self.started > CEL_BUDGET_SECONDS:
            self.out_of_time = True
            self.problem(
                where,
                f"the definition's conditions take longer than {CEL_BUDGET_SECONDS:.0f}s to compile; this and the "
                "conditions after it were not checked: write fewer or shorter conditions",
            )
            return
        try:
            await asyncio.to_thread(compile_condition, expression)
        except ConditionError as exc:
            self.problem(where, str(exc))

    async def steps(self, steps: list[Step], at: str, visible: set[str]) -> set[str]:
        """Check one list; the variables it leaves for what follows it."""
        order = _order(steps, at, self)
        produced_by: dict[str, set[str]] = {}
        for index in order:
            step = steps[index]
            seen = set(visible)
            for ancestor in _ancestors(steps, index):
                seen |= produced_by.get(steps[ancestor].name, set())
            produced_by[step.name] = await self.step(step, f"{at}[{index}]", seen)
        return set().union(*produced_by.values()) if produced_by else set()

    async def step(self, step: Step, at: str, visible: set[str]) -> set[str]:
        self.refs(f"{at}.params", step.params, visible)
        self.refs(f"{at}.if", step.if_, visible)
        await self.cel(f"{at}.if", step.if_)
        if step.retry is not None and step.on_error is not None and step.on_error.strategy == "retry":
            self.problem(f"{at}.onError", "give retries either as retry or as onError's retry strategy, not both")
        if step.on_error is not None:
            if step.on_error.strategy == "escalate" and step.on_error.escalation_target is None:
                self.problem(f"{at}.onError.escalationTarget", "the escalate strategy needs an escalationTarget")
            if step.on_error.strategy == "compensate" and step.on_error.compensation_step is None:
                self.problem(
                    f"{at}.onError.compensationStep", "the compensate strategy needs this step's compensationStep"
                )
        if step.schedule is not None:
            if step.schedule.every_ms < MIN_SCHEDULE_MS:
                # Checked at save, not in the format: runs recorded with a shorter period still replay.
                self.problem(
                    f"{at}.schedule.everyMs",
                    f"a step repeats at most once a second: everyMs is at least {MIN_SCHEDULE_MS}",
                )
            await self.cel(f"{at}.schedule.until", step.schedule.until)
        produced = {step.name, step.variable}
        if step.tool is not None:
            await self.tool(step, at)
        elif step.parallel is not None:
            for b, branch in enumerate(step.parallel.branches):
                produced |= await self.steps(branch.steps, f"{at}.parallel.branches[{b}].steps", set(visible))
            names = [b.name for b in step.parallel.branches]
            if len(set(names)) != len(names):
                self.problem(f"{at}.parallel.branches", "branch names must be unique")
        elif step.branch is not None:
            await self.cel(f"{at}.branch.condition", step.branch.condition)
            self.refs(f"{at}.branch.condition", step.branch.condition, visible)
            produced |= await self.steps(step.branch.then, f"{at}.branch.then", set(visible))
            produced |= await self.steps(step.branch.else_, f"{at}.branch.else", set(visible))
        elif step.foreach is not None:
            loop = step.foreach
            if not is_whole_reference(loop.items):
                self.problem(f"{at}.foreach.items", "items is one reference to a list, such as ${input.lines}")
            self.refs(f"{at}.foreach.items", loop.items, visible)
            if loop.as_ in visible or loop.as_ in ROOTS:
                self.problem(f"{at}.foreach.as", f"'{loop.as_}' is already a variable here")
            await self.steps(loop.steps, f"{at}.foreach.steps", visible | {loop.as_, f"{loop.as_}_index"})
        if step.wait_event is not None:
            wait = step.wait_event
            if self.event_sources is not None and wait.source not in self.event_sources:
                known = ", ".join(sorted(self.event_sources)) or "none"
                self.problem(
                    f"{at}.wait_event.source",
                    f"no event source '{wait.source}' is declared (TRELLIS_EVENT_SOURCES); declared: {known}",
                )
            self.refs(f"{at}.wait_event.key", wait.key, visible)
            await self.cel(f"{at}.wait_event.condition", wait.condition)
        elif step.human_task is not None:
            task = step.human_task
            self.refs(f"{at}.human_task.title", task.title, visible)
            self.refs(f"{at}.human_task.description", task.description, visible)
            if task.escalation is not None and task.escalation.timeout_ms <= task.timeout_ms:
                self.problem(
                    f"{at}.human_task.escalation.timeoutMs",
                    "the escalation comes after the reminder: its timeoutMs must be greater than the task's",
                )
            if task.form is not None:
                try:
                    check_bounded_schema(task.form, "form", "forms")
                except ValueError as exc:
                    self.problem(f"{at}.human_task.form", str(exc))
        return produced

    async def tool(self, step: Step, at: str) -> None:
        assert step.tool is not None
        try:
            entry = await self.lookup(step.tool)
        except McpUnavailable as exc:
            self.problem(f"{at}.tool", f"'{step.tool}' cannot be checked: {exc}")
            return
        if entry is None:
            self.problem(
                f"{at}.tool",
                f"unknown tool '{step.tool}'; GET /api/v1/workflows/schema lists the tools (Trellis tools, "
                "and <server>.<tool> for the MCP servers the settings declare)",
            )
            return
        self.problems += _params(step, entry, f"{at}.params")
        if entry.name == "http.request":
            self.problems += _http_url(step, f"{at}.params") + _http_sign(step, f"{at}.params")


def _ancestors(steps: list[Step], index: int) -> set[int]:
    """The positions a step waits for, transitively: its dependencies, or the step before it."""
    position = {step.name: i for i, step in enumerate(steps)}
    found: set[int] = set()
    todo = [index]
    while todo:
        current = steps[todo.pop()]
        i = position[current.name]
        direct = (
            [position[d] for d in current.dependencies if d in position]
            if current.dependencies is not None
            else ([i - 1] if i > 0 else [])
        )
        for parent in direct:
            if parent not in found and parent != index:
                found.add(parent)
                todo.append(parent)
    return found


def _order(steps: list[Step], at: str, checker: _Checker) -> list[int]:
    """The list's steps in an order where each comes after what it waits for; unknown dependencies and
    cycles are problems (and the steps caught in a cycle are still checked, in written order)."""
    position = {step.name: i for i, step in enumerate(steps)}
    waits: dict[int, set[int]] = {}
    for i, step in enumerate(steps):
        if step.dependencies is None:
            waits[i] = {i - 1} if i > 0 else set()
            continue
        waits[i] = set()
        for d, name in enumerate(step.dependencies):
            if name not in position:
                checker.problem(
                    f"{at}[{i}].dependencies[{d}]",
                    f"'{name}' is not a step of this list; a step may wait only for its siblings",
                )
            elif name == step.name:
                checker.problem(f"{at}[{i}].dependencies[{d}]", "a step cannot wait for itself")
            else:
                waits[i].add(position[name])
    order: list[int] = []
    done: set[int] = set()
    while len(order) < len(steps):
        ready = [i for i in range(len(steps)) if i not in done and waits[i] <= done]
        if not ready:
            stuck = [steps[i].name for i in range(len(steps)) if i not in done]
            checker.problem(f"{at}", f"the dependencies form a cycle among: {', '.join(stuck)}")
            order += [i for i in range(len(steps)) if i not in done]
            break
        order += ready
        done |= set(ready)
    return order


async def check(
    definition: StepWorkflowDefinition,
    lookup: Callable[[str], Awaitable[ToolEntry | None]],
    event_sources: set[str] | None = None,
) -> list[Problem]:
    checker = _Checker(lookup, event_sources, [])
    seen: dict[str, str] = {}
    every = [("steps", s) for s in walk(definition.steps)] + [("compensations", s) for s in definition.compensations]
    for _, step in every:
        if step.name in seen:
            checker.problem(_path_of(definition, step), f"step name '{step.name}' is used by an earlier step")
        seen[step.name] = step.name
    variables: dict[str, str] = {}
    for _, step in every:
        if step.variable in ROOTS:
            checker.problem(
                _path_of(definition, step, "assign"),
                f"'{step.variable}' is reserved for the execution's {step.variable}",
            )
        elif step.assign and (step.assign in variables or (step.assign in seen and step.assign != step.name)):
            checker.problem(_path_of(definition, step, "assign"), f"variable '{step.assign}' is already used")
        variables[step.variable] = step.name

    _fan_out(definition, checker)
    produced = await checker.steps(definition.steps, "steps", set(ROOTS))
    compensation_names = {c.name for c in definition.compensations}
    for index, compensation in enumerate(definition.compensations):
        at = f"compensations[{index}]"
        if compensation.tool is None:
            checker.problem(f"{at}", "a compensation is a tool step")
        if compensation.dependencies is not None or compensation.on_error is not None or compensation.schedule:
            checker.problem(f"{at}", "a compensation has no dependencies, onError or schedule")
        await checker.step(compensation, at, produced | set(ROOTS))
    for step in walk(definition.steps):
        wanted = step.on_error.compensation_step if step.on_error else None
        if wanted is not None and wanted not in compensation_names:
            checker.problem(
                _path_of(definition, step, "onError.compensationStep"),
                f"'{wanted}' is not in the definition's compensations list",
            )
    return checker.problems


MAX_TOTAL_STEPS = 500  # written steps in one definition, nested ones included
MAX_WIDTH = 200  # steps that may run at once: parallel branches, foreach concurrency, DAG siblings


def _width(steps: list[Step]) -> int:
    """The most steps of a list that may run at the same time (a DAG's siblings may all run at once)."""
    widths = [_step_width(step) for step in steps]
    if not widths:
        return 0
    return sum(widths) if any(step.dependencies is not None for step in steps) else max(widths)


def _step_width(step: Step) -> int:
    if step.parallel is not None:
        return sum(_width(branch.steps) for branch in step.parallel.branches)
    if step.branch is not None:
        return max(_width(step.branch.then), _width(step.branch.else_))
    if step.foreach is not None:
        return step.foreach.concurrency * _width(step.foreach.steps)
    return 1


def _fan_out(definition: StepWorkflowDefinition, checker: _Checker) -> None:
    """Fan-out is bounded when a definition is saved: its size, how much of it may run at once, and whether
    it starts itself (workflow.run of its own name would spawn executions without end)."""
    every = walk(definition.steps) + list(definition.compensations)
    if len(every) > MAX_TOTAL_STEPS:
        checker.problem(
            "steps",
            f"a definition has at most {MAX_TOTAL_STEPS} steps, nested ones included; this one has {len(every)}",
        )
    width = _width(definition.steps)
    if width > MAX_WIDTH:
        checker.problem(
            "steps",
            f"up to {width} steps of this definition may run at once (parallel branches, foreach concurrency, "
            f"DAG siblings); at most {MAX_WIDTH} may",
        )
    for step in every:
        if step.tool == "workflow.run" and step.params.get("workflow") == definition.name:
            checker.problem(
                _path_of(definition, step, "params.workflow"),
                "a workflow cannot run itself through workflow.run (it would start executions without end)",
            )


def _path_of(definition: StepWorkflowDefinition, target: Step, field: str = "name") -> str:
    """The written path of a step, wherever it is nested (``steps[1].parallel.branches[0].steps[2]``)."""

    def search(steps: list[Step], at: str) -> str | None:
        for i, step in enumerate(steps):
            here = f"{at}[{i}]"
            if step is target:
                return here
            nested: list[tuple[list[Step], str]] = []
            if step.parallel is not None:
                nested = [
                    (b.steps, f"{here}.parallel.branches[{n}].steps") for n, b in enumerate(step.parallel.branches)
                ]
            elif step.branch is not None:
                nested = [(step.branch.then, f"{here}.branch.then"), (step.branch.else_, f"{here}.branch.else")]
            elif step.foreach is not None:
                nested = [(step.foreach.steps, f"{here}.foreach.steps")]
            for inner, inner_at in nested:
                if (found := search(inner, inner_at)) is not None:
                    return found
        return None

    where = search(definition.steps, "steps") or search(definition.compensations, "compensations") or "steps"
    return f"{where}.{field}"
