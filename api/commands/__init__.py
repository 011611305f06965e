"""Commands: what any entry point may ask of a domain (start, transition, decide, cancel, change, …).

A command takes the principal and checks its rights itself (``rights.allow``), talks to Temporal only
through the gateway (api/gateway.py), and raises the domain's refusals as ``ApiError``s. Routes, the
inbox and the console call commands, never each other's functions, so a new entry point cannot skip a
rule; an import-linter contract keeps api/inbox and api/ui off the route modules.
"""
