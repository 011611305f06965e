"""Template validation rules, one by one, and the shipped packs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from core.process.contracts import WorkflowGraph
from core.process.dag import TemplateError, validate_graph
from core.process.templates import read_packs
from tests.support.process import node


def graph(states: list[dict[str, Any]]) -> WorkflowGraph:
    return WorkflowGraph.model_validate({"states": states})


LINE = [node(0, [], [1]), node(1, [0], [2]), node(2, [1], [])]


def broken(rule: str, states: list[dict[str, Any]]) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        validate_graph(graph(states))
    assert caught.value.rule == rule, caught.value.message
    return caught.value


def test_a_straight_line_is_valid() -> None:
    validate_graph(graph(LINE))


def test_every_pack_is_valid_and_hs_std_is_the_seed_graph() -> None:
    packs = {p.code: p for p in read_packs()}
    assert set(packs) == {"HS_STD", "HVAC_EMERG", "CONST_RES", "PLUMB_MAINT", "ELEC_COMM"}
    hs = packs["HS_STD"].workflow_graph.states
    assert [(s.id, s.name, s.entity_name, s.entity_status, s.terminal_flag) for s in hs] == [
        (0, "lead_generation", "cust", "Lead", False),
        (1, "customer_onboarding", "cust", "Qualified", False),
        (2, "quote_generation", "quote", "Draft", False),
        (3, "quote_sent", "quote", "Sent", False),
        (4, "quote_accepted", "order", "Confirmed", False),
        (5, "quote_rejected", "quote", "Rejected", True),
        (6, "work_scheduled", "task", "Scheduled", False),
        (7, "work_completed", "task", "Completed", False),
        (8, "invoice_sent", "invoice", "Sent", False),
        (9, "payment_received", "invoice", "Paid", True),
    ]
    assert {s.id: s.child_ids for s in hs} == {
        0: [1, 2],
        1: [2, 3],
        2: [3, 4],
        3: [4, 5],
        4: [6],
        5: [],
        6: [7],
        7: [8],
        8: [9],
        9: [],
    }
    for pack in packs.values():
        assert any(s.terminal_flag and s.success for s in pack.workflow_graph.states)
        assert any(s.terminal_flag and not s.success for s in pack.workflow_graph.states), pack.code


def test_duplicate_ids() -> None:
    error = broken("unique_ids", [*LINE, node(2, [1], [])])
    assert error.state_id == 2


def test_parent_and_child_lists_must_agree() -> None:
    states = copy.deepcopy(LINE)
    states[2]["parent_ids"] = []
    states.append(node(3, [], []))
    error = broken("parent_child_agreement", states)
    assert "state 1 ('s1') lists 2 as a child" in error.message


def test_unknown_child() -> None:
    states = copy.deepcopy(LINE)
    states[1]["child_ids"] = [2, 9]
    assert "child 9, which does not exist" in broken("unknown_state", states).message


def test_cycles_are_rejected() -> None:
    states = [node(0, [], [1]), node(1, [0, 2], [2]), node(2, [1], [1, 3]), node(3, [2], [])]
    error = broken("acyclic", states)
    assert "cycle" in error.message


def test_every_state_reachable_from_the_start() -> None:
    # A second state without parents is not the start (the lowest id is), so it is unreachable.
    states = [*copy.deepcopy(LINE), node(3, [], [4]), node(4, [3], [])]
    error = broken("reachable", states)
    assert error.state_id == 3
    assert "cannot be reached from the start state 0" in error.message


def test_non_terminal_must_reach_a_terminal() -> None:
    states = [node(0, [], [1, 2]), node(1, [0], [], terminal_flag=False), node(2, [0], [])]
    error = broken("reaches_terminal", states)
    assert error.state_id == 1


def test_terminal_states_have_no_children() -> None:
    states = copy.deepcopy(LINE)
    states[1]["terminal_flag"] = True
    states[1]["success"] = False
    error = broken("terminal_without_children", states)
    assert error.state_id == 1


def test_terminal_states_declare_success() -> None:
    states = copy.deepcopy(LINE)
    del states[2]["success"]
    assert broken("terminal_success", states).state_id == 2


def test_approval_targets_must_be_children() -> None:
    states = copy.deepcopy(LINE)
    states[0]["approval"] = {"roles": ["approver"], "reject_to_state_id": 2}
    assert broken("approval_target", states).state_id == 0


def test_default_path_needs_timeout_and_target() -> None:
    states = copy.deepcopy(LINE)
    states[0]["approval"] = {"on_timeout": "default_path", "default_to_state_id": 1}
    assert broken("approval_timeout", states).state_id == 0
