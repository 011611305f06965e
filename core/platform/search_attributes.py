"""Custom search attributes: what makes Trellis runs findable in the Temporal UI.

They must exist on the server before a workflow upserts them (an unknown one fails the workflow
task), so the worker registers any missing ones on start (``ensure_search_attributes``).
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

TEMPLATE_CODE = SearchAttributeKey.for_keyword("TrellisTemplateCode")
TEMPLATE_VERSION = SearchAttributeKey.for_int("TrellisTemplateVersion")
INDUSTRY_SECTOR = SearchAttributeKey.for_keyword("TrellisIndustrySector")
CURRENT_STATE = SearchAttributeKey.for_keyword("TrellisCurrentState")
INSTANCE_STATUS = SearchAttributeKey.for_keyword("TrellisInstanceStatus")
ROOT_ENTITY_ID = SearchAttributeKey.for_keyword("TrellisRootEntityId")
RULE_ID = SearchAttributeKey.for_keyword("TrellisRuleId")
ENTITY_TYPE = SearchAttributeKey.for_keyword("TrellisEntityType")
ENTITY_ID = SearchAttributeKey.for_keyword("TrellisEntityId")
TRIGGER = SearchAttributeKey.for_keyword("TrellisTrigger")
SESSION_STATUS = SearchAttributeKey.for_keyword("TrellisSessionStatus")
SESSION_AGENTS = SearchAttributeKey.for_keyword_list("TrellisAgents")
SESSION_GOAL = SearchAttributeKey.for_text("TrellisGoal")
# A step execution's workflow names, from the root execution down to it (a workflow.run child carries
# its parent's too). A keyword list: the dev server allows 10 keywords, all taken; an execution's status
# and current step share TrellisInstanceStatus and TrellisCurrentState with process instances.
STEP_WORKFLOW = SearchAttributeKey.for_keyword_list("TrellisStepWorkflow")
EXECUTION_STATUS = INSTANCE_STATUS
CURRENT_STEP = CURRENT_STATE

ALL_KEYS: tuple[SearchAttributeKey, ...] = (
    TEMPLATE_CODE,
    TEMPLATE_VERSION,
    INDUSTRY_SECTOR,
    CURRENT_STATE,
    INSTANCE_STATUS,
    ROOT_ENTITY_ID,
    RULE_ID,
    ENTITY_TYPE,
    ENTITY_ID,
    TRIGGER,
    SESSION_STATUS,
    SESSION_AGENTS,
    SESSION_GOAL,
    STEP_WORKFLOW,
)

_INDEXED_TYPE = {
    "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "TEXT": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "KEYWORD_LIST": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the keys the server does not know yet; return the names added."""
    existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {key.name: _INDEXED_TYPE[key.indexed_value_type.name] for key in ALL_KEYS if key.name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
