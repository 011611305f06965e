"""Deciding one request against the saved policies: pure, the same for every caller.

Of the enabled policies whose subjects, target and condition all match, a ``deny`` wins over a
``require_approval``, which wins over an ``allow`` (the safer effect overrides, whatever the order);
among policies of the same effect the lowest ``priority`` (then name) is the one recorded. No policy
matching means allowed: policies narrow what agents, workflows and people may do. A condition that
cannot be evaluated (a field the arguments lack) does not match, and is said in the reason.
"""

from __future__ import annotations

from typing import Any

from core.platform.cel import ConditionError, evaluate
from core.policy.contracts import CheckRequest, Policy, PolicyDecision, Subjects, Target, matches

# How strong an effect is: the stronger of two matching policies holds.
STRENGTH = {"deny": 2, "require_approval": 1, "allow": 0}


def subject_matches(subjects: Subjects, request: CheckRequest) -> bool:
    if subjects.empty():
        return True
    who = request.subject
    if who.kind == "agent":
        return any(matches(p, who.name) for p in subjects.agents)
    if who.kind == "workflow":
        return any(matches(p, who.name) for p in subjects.workflows)
    roles = {who.role, *who.roles} - {None}
    return who.name in subjects.people or bool(roles & set(subjects.roles))


def target_matches(target: Target, request: CheckRequest) -> bool:
    action = request.action
    if target.kind != action.kind:
        return False
    if action.kind == "tool":
        return any(matches(p, action.name) for p in target.tools)
    if action.kind == "rule_action":
        return any(matches(p, action.name) for p in target.actions)
    if target.template_code != action.template_code:
        return False
    if not target.to_states:
        return True
    return any(s == action.to_state_id or s == action.to_state_name for s in target.to_states)


def variables(request: CheckRequest) -> dict[str, Any]:
    action = request.action
    return {
        "args": request.arguments,
        "entity": request.entity or {},
        "subject": {"kind": request.subject.kind, "name": request.subject.name, "role": request.subject.role or ""},
        "target": {
            "kind": action.kind,
            "name": action.name,
            "template_code": action.template_code or "",
            "to_state_id": action.to_state_id if action.to_state_id is not None else -1,
            "to_state_name": action.to_state_name or "",
        },
    }


def decide(policies: list[Policy], request: CheckRequest) -> PolicyDecision:
    chosen: Policy | None = None
    unevaluated: list[str] = []
    values = variables(request)
    for policy in sorted(policies, key=lambda p: (p.body.priority, p.name)):
        body = policy.body
        if not body.enabled or not target_matches(body.target, request) or not subject_matches(body.subjects, request):
            continue
        if body.condition is not None:
            try:
                if not evaluate(body.condition, values):
                    continue
            except ConditionError as exc:
                unevaluated.append(f"{policy.name}: {exc}")
                continue
        if chosen is None or STRENGTH[body.effect] > STRENGTH[chosen.body.effect]:
            chosen = policy
    if chosen is None:
        note = f" (conditions not evaluated: {'; '.join(unevaluated)})" if unevaluated else ""
        return PolicyDecision(effect="allow", reason=f"no policy applies{note}")
    body = chosen.body
    what = body.description or f"policy {chosen.name}"
    reason = {
        "deny": f"denied by policy '{chosen.name}' v{chosen.version}: {what}",
        "require_approval": f"needs approval under policy '{chosen.name}' v{chosen.version}: {what}",
        "allow": f"allowed by policy '{chosen.name}' v{chosen.version}",
    }[body.effect]
    return PolicyDecision(
        effect=body.effect, policy=chosen.name, version=chosen.version, reason=reason, approval=body.approval
    )
