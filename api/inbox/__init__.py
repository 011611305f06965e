"""One inbox for every decision a person owes, whatever domain owes it: process approval gates, agent
session approvals, open work items (and, when they exist, step workflows' human tasks).

It sits in the API layer because it composes domains, which never import one another. A kind of item
plugs in by implementing ``InboxKind`` (``api/inbox/kinds.py``) and joining ``KINDS``: how its pending
items are listed for a viewer, and how a decision is routed to the update of the workflow that owns it.
"""
