"""The transition an approval was asked for (core/policy), performed once approved: an update with the id
``approval-<workflow id>``, which Temporal applies once however often the activity is tried. Called by
name (PERFORM_TRANSITION) from the approval workflow, so the policy domain imports no process code."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.platform import errors
from core.policy.contracts import TransitionToPerform
from core.process.contracts import InstanceView, TransitionRequest
from core.process.ids import TRANSITION, process_workflow_id


class ApprovedTransitions:
    @activity.defn(name="approval.perform_transition")  # PERFORM_TRANSITION, which the approval calls
    async def perform_transition(self, data: TransitionToPerform) -> dict[str, object]:
        """The approved transition, as its requester asked it; a refusal (the instance moved on meanwhile)
        is the approval's message, not a failure to retry."""
        info = activity.info()
        request = TransitionRequest(
            to_state_id=data.to_state_id,
            comment=data.comment,
            fields=data.fields,
            actor=data.actor,
            actor_role=data.actor_role,
        )
        handle = activity.client().get_workflow_handle(process_workflow_id(data.instance_id))
        try:
            view = await handle.execute_update(
                TRANSITION, request, id=f"approval-{info.workflow_id}", result_type=InstanceView
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = getattr(cause, "message", None) or str(cause or exc)
            if isinstance(cause, ApplicationError) and cause.type == errors.TRANSITION_IN_PROGRESS.type:
                raise errors.EFFECT_UNAVAILABLE.error(f"the instance is busy: {message}") from exc
            return {"performed": False, "message": message}
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return {"performed": False, "message": f"instance {data.instance_id} is not running"}
            raise
        return {"performed": True, "state": view.current_state.model_dump(mode="json")}
