"""Text Trellis chooses to leave readable in Temporal: run and activity summaries.

Temporal passes a summary through the same data converter as a workflow's input, so with payload keys
set it would be stored encrypted and the Temporal UI would show ciphertext where "quote_to_order v1"
belongs. A summary is built by Trellis from what an admin named (templates, states, agents, step
workflows), never from entity fields or goals unless ``TRELLIS_NAMES_IN_TEMPORAL`` says so. Marking it
``PublicText`` tells the converter to tag its payload, and the codec leaves tagged payloads as they are.
This module imports nothing heavy: workflow code uses it inside the sandbox.
"""

from __future__ import annotations

# The payload metadata key that marks a payload the codec must not encrypt.
PUBLIC_METADATA_KEY = "trellis-public"


class PublicText(str):
    """A string Trellis deliberately leaves unencrypted in Temporal (summaries only)."""

    __slots__ = ()
