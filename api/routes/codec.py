"""The remote codec endpoint (Temporal's protocol): the Temporal UI posts encrypted payloads and shows
what comes back, so people who hold an API key read decrypted inputs and results in the UI.

Point the UI at it: the dev server's ``--ui-codec-endpoint`` (set by `make run`), or the UI's codec
setting in the compose stack. Requests carry ``Authorization: Bearer <API key>`` like every other call.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from temporalio.api.common.v1 import Payload

from api.deps import Reader
from api.errors import ApiError
from core.platform.codec import AesGcmCodec, PayloadKeyError
from core.platform.contracts import RequestModel, RequestPart

router = APIRouter(prefix="/codec", tags=["codec"])


Base64 = Annotated[str, Field(pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]


class JsonPayload(RequestPart):
    metadata: dict[str, Base64] = Field(default_factory=dict, description="base64 values")
    data: Base64 = Field(default="", description="base64")


class Payloads(RequestModel):
    payloads: list[JsonPayload] = Field(max_length=1000)


def _codec(request: Request) -> AesGcmCodec:
    codec: AesGcmCodec | None = request.app.state.codec
    if codec is None:
        raise ApiError(404, "codec_off", "payload encryption is off: set TRELLIS_PAYLOAD_KEYS to turn it on")
    return codec


Codec = Annotated[AesGcmCodec, Depends(_codec)]


def _to_protos(body: Payloads) -> list[Payload]:
    try:
        return [
            Payload(
                metadata={k: base64.b64decode(v, validate=True) for k, v in p.metadata.items()},
                data=base64.b64decode(p.data, validate=True),
            )
            for p in body.payloads
        ]
    except ValueError as exc:
        raise ApiError(422, "validation_error", f"payloads must be base64: {exc}") from exc


def _to_json(payloads: list[Payload]) -> Payloads:
    return Payloads(
        payloads=[
            JsonPayload(
                metadata={k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                data=base64.b64encode(p.data).decode(),
            )
            for p in payloads
        ]
    )


@router.post("/decode", response_model=Payloads)
async def decode(body: Payloads, _: Reader, codec: Codec) -> Payloads:
    try:
        return _to_json(await codec.decode(_to_protos(body)))
    except PayloadKeyError as exc:
        raise ApiError(422, "unknown_key", str(exc)) from exc
    except Exception as exc:  # a tampered or foreign ciphertext
        raise ApiError(422, "undecodable", f"a payload could not be decrypted: {type(exc).__name__}") from exc


@router.post("/encode", response_model=Payloads)
async def encode(body: Payloads, _: Reader, codec: Codec) -> Payloads:
    return _to_json(await codec.encode(_to_protos(body)))
