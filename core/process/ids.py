"""Ids of process instances and of what their steps write."""

from __future__ import annotations

import uuid

from core.platform.ids import derived_id


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
