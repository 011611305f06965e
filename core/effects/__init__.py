"""Side effects, each written once, and the one exactly-once ledger they are applied under.

Rule actions (``activities/automation/actions.py``) and step tools (``activities/steps/tools.py``) are
thin envelopes around these bodies: a rule renders its admin's templates, a step resolves its
references, and both hand typed values to the same effect. What differs between them is only where
the ledger keeps its record (a rule's ``f_action_log`` row, a step's record) and how a failure is told
to the caller's retry policy.
"""
