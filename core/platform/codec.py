"""Payload encryption: what Trellis hands Temporal (workflow inputs, results, activity arguments, update
arguments, failure messages) is stored encrypted with AES-GCM, so entity fields, e-mail addresses,
webhook headers, session goals and LLM output never sit in plain text in Temporal's database.
Summaries are the exception: Trellis marks them ``PublicText`` and they stay readable (public_text.py).

Failures are bounded here too, encrypted or not: the server keeps an activity's last failure only up
to 4 KB and shows "Failure exceeds size limit" beyond, so a message, a stack trace and a chain of
causes are cut to fit before they leave the worker.

Keys come from settings by key id (``TRELLIS_PAYLOAD_KEYS="k2:<base64 32 bytes>,k1:<…>"``): the first
encrypts, every listed key decrypts, so rotation is: put a new key first, keep the old ones until no
history you still read needs them. Payloads written before encryption was switched on pass through.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadCodec, PayloadConverter

from core.platform.public_text import PUBLIC_METADATA_KEY, PublicText

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class PayloadKeyError(ValueError):
    pass


def parse_keys(raw: str) -> list[tuple[str, bytes]]:
    """``id:base64key,…`` → [(id, key)], the first being the one that encrypts."""
    keys: list[tuple[str, bytes]] = []
    for index, entry in enumerate(part.strip() for part in raw.split(",")):
        if not entry:
            continue
        key_id, _, encoded = entry.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise PayloadKeyError(f"TRELLIS_PAYLOAD_KEYS entry {index + 1}: the key is not base64") from exc
        if not key_id or len(key) != 32:
            raise PayloadKeyError(
                f"TRELLIS_PAYLOAD_KEYS entry {index + 1} must look like 'id:<base64 of 32 random bytes>'"
            )
        keys.append((key_id, key))
    return keys


def new_key() -> str:
    """A fresh key, as the settings take it (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(32)).decode()


class AesGcmCodec(PayloadCodec):
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise PayloadKeyError("at least one payload key is needed")
        self._current_id, current = keys[0]
        self._current = AESGCM(current)
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded = []
        for payload in payloads:
            if PUBLIC_METADATA_KEY in payload.metadata:  # a summary, left readable on purpose
                plain = Payload()
                plain.CopyFrom(payload)
                del plain.metadata[PUBLIC_METADATA_KEY]  # stored as any plain payload, which every reader shows
                encoded.append(plain)
                continue
            nonce = os.urandom(12)
            sealed = self._current.encrypt(nonce, payload.SerializeToString(), self._current_id.encode())
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self._current_id.encode()},
                    data=nonce + sealed,
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)  # written before encryption was on
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            key = self._keys.get(key_id)
            if key is None:
                raise PayloadKeyError(f"payload encrypted with key '{key_id}', which TRELLIS_PAYLOAD_KEYS lacks")
            plain = key.decrypt(payload.data[:12], payload.data[12:], key_id.encode())
            decoded.append(Payload.FromString(plain))
        return decoded


class TrellisPayloadConverter(PydanticPayloadConverter):
    """The pydantic converter, tagging the payload of a ``PublicText`` so the codec leaves it readable."""

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        payloads = super().to_payloads(values)
        for value, payload in zip(values, payloads, strict=True):
            if isinstance(value, PublicText):
                payload.metadata[PUBLIC_METADATA_KEY] = b"1"
        return payloads


# What one failure may carry before it leaves the worker. The server keeps an activity's failure up to
# 4 KB, encrypted attributes included: 1,000 + 3 x 300 + 1,000 characters leave room for the types,
# details and the encryption (about 60 bytes a level).
FAILURE_MESSAGE_CHARS = 1000
FAILURE_CAUSE_MESSAGE_CHARS = 300
FAILURE_STACK_CHARS = 1000
FAILURE_DEPTH = 4


def _cut(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    marker = " … (cut)" if not keep_end else "(cut) … "
    return marker + text[-(limit - len(marker)) :] if keep_end else text[: limit - len(marker)] + marker


def bound_failure(failure: Failure) -> None:
    """Cut a failure chain to fit the server's limit: every message, the outermost stack trace (its last
    frames, where the error was raised) and the number of causes. Levels another worker already
    encoded are left as they are: they were bounded where they were made."""
    level: Failure | None = failure
    depth = 0
    while level is not None:
        if not level.HasField("encoded_attributes"):
            level.message = _cut(level.message, FAILURE_CAUSE_MESSAGE_CHARS if depth else FAILURE_MESSAGE_CHARS)
            level.stack_trace = _cut(level.stack_trace, FAILURE_STACK_CHARS, keep_end=True) if depth == 0 else ""
        depth += 1
        if not level.HasField("cause"):
            break
        if depth == FAILURE_DEPTH - 1 and level.cause.HasField("cause"):
            level.cause.ClearField("cause")
            level.cause.message = (
                _cut(level.cause.message, FAILURE_CAUSE_MESSAGE_CHARS - 25) + " (deeper causes left out)"
            )
        level = level.cause


def _encode_attributes(failure: Failure, payload_converter: PayloadConverter) -> None:
    """Move each level's message and stack trace into its encoded attributes (then encrypted by the
    codec), as Temporal's own encoding failure converter does."""
    level: Failure | None = failure
    while level is not None:
        if not level.HasField("encoded_attributes"):
            level.encoded_attributes.CopyFrom(
                payload_converter.to_payloads([{"message": level.message, "stack_trace": level.stack_trace}])[0]
            )
            level.message = "Encoded failure"
            level.stack_trace = ""
        level = level.cause if level.HasField("cause") else None


class BoundedFailureConverter(DefaultFailureConverter):
    """Temporal's failure conversion, cut to fit the server's limit (``bound_failure``)."""

    _encrypt = False

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure) -> None:
        # Converted plain first (the default recursion would encode each level before it can be cut).
        DefaultFailureConverter().to_failure(exception, payload_converter, failure)
        bound_failure(failure)
        if self._encrypt:
            _encode_attributes(failure, payload_converter)


class EncryptedBoundedFailureConverter(BoundedFailureConverter):
    """The bounded failure with its message and stack trace in encoded attributes, so the codec encrypts
    them; Temporal shows "Encoded failure" until the codec decodes it (the UI does, as does the CLI's
    JSON output: README "Reading payloads from the CLI")."""

    _encrypt = True


def data_converter(payload_keys: str) -> DataConverter:
    """The pydantic converter with bounded failures; with keys, every payload (and failure message)
    encrypted, summaries excepted."""
    converter = dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=TrellisPayloadConverter,
        failure_converter_class=BoundedFailureConverter,
    )
    if not payload_keys.strip():
        return converter
    return dataclasses.replace(
        converter,
        payload_codec=AesGcmCodec(parse_keys(payload_keys)),
        failure_converter_class=EncryptedBoundedFailureConverter,
    )
