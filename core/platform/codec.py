"""Payload encryption: what Trellis hands Temporal (workflow inputs, results, activity arguments, update
arguments, failure messages) is stored encrypted with AES-GCM, so entity fields, e-mail addresses,
webhook headers, session goals and LLM output never sit in plain text in Temporal's database.

Keys come from settings by key id (``TRELLIS_PAYLOAD_KEYS="k2:<base64 32 bytes>,k1:<…>"``): the first
encrypts, every listed key decrypts, so rotation is: put a new key first, keep the old ones until no
history you still read needs them. Payloads written before encryption was switched on pass through.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

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


def data_converter(payload_keys: str) -> DataConverter:
    """The pydantic converter; with keys, every payload (and failure message) encrypted."""
    if not payload_keys.strip():
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=AesGcmCodec(parse_keys(payload_keys)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
