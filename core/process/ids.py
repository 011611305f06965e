"""Ids of process instances and of what their steps write."""

from __future__ import annotations

import uuid

from core.platform.ids import derived_id

# The process workflow and its updates by name, for callers that may not import workflows/ (a step
# tool's activity). workflows/process/instance.py is declared under PROCESS_WORKFLOW; its update
# methods carry these names (the instance.* step tool test fails if they drift).
PROCESS_WORKFLOW = "ProcessInstance"
WAIT_READY = "wait_ready"
TRANSITION = "transition"
MIGRATE = "migrate"
MIGRATION_WORKFLOW = "InstanceMigration"


def migration_workflow_id(migration_id: str | uuid.UUID) -> str:
    return f"migration-{migration_id}"


def migrate_update_id(migration_id: str | uuid.UUID) -> str:
    """One migration's update of an instance: Temporal applies an update id once per run."""
    return f"migrate-{migration_id}"


def process_workflow_id(instance_id: str | uuid.UUID) -> str:
    """The workflow id of an instance, derived from the instance id alone (``process-<uuid>``), so the
    API reaches a running instance without reading the database. The template code is a search
    attribute and part of the run's summary in the Temporal UI.

    Instances started before this scheme have ``process-<template code>-<uuid>``; their projection row
    records it (``workflow_id``), and the API falls back to it."""
    return f"process-{instance_id}"


def state_entity_id(instance_id: str, seq: int) -> uuid.UUID:
    return derived_id("entity", instance_id, seq)


def event_id(instance_id: str, seq: int, event_type: str) -> uuid.UUID:
    return derived_id("event", instance_id, seq, event_type)
