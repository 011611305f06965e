"""The remote codec endpoint (Temporal's protocol): the Temporal UI posts encrypted payloads and shows
what comes back, so people who hold an API key read decrypted inputs and results in the UI.

Point the UI at it: the dev server's ``--ui-codec-endpoint`` (set by `make run`), or the UI's codec
setting in the compose stack. Requests carry ``Authorization: Bearer <API key>`` like every other call.

``/decode`` answers what a person can read in every case (decision 0015). The Temporal CLI and UI retry
a codec that answers an error until their own deadline and then say only "context deadline exceeded",
so a request without a valid key, or a payload this server cannot decrypt, gets a readable
placeholder in that payload's place (``trellis-codec: not-decoded``), with the reason and what to do;
nothing secret is in it. ``/encode`` keeps answering 401: a made-up payload must never be sent on.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field
from temporalio.api.common.v1 import Payload

from api.deps import Reader, bearer, counted_principal
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


NOT_DECODED = "trellis-codec"


def _placeholder(reason: str) -> Payload:
    """A readable payload standing where one could not be decoded: the reason, nothing secret."""
    return Payload(
        metadata={"encoding": b"json/plain", NOT_DECODED: b"not-decoded"},
        data=json.dumps(f"[Trellis codec: not decoded: {reason}]").encode(),
    )


async def _decoded(codec: AesGcmCodec, payload: Payload) -> Payload:
    try:
        [plain] = await codec.decode([payload])
    except PayloadKeyError as exc:
        return _placeholder(f"{exc}; add that key to TRELLIS_PAYLOAD_KEYS (keep old keys after a rotation)")
    except Exception as exc:  # a tampered or foreign ciphertext
        return _placeholder(f"the payload could not be decrypted ({type(exc).__name__}): tampered, or another key")
    return plain


@router.post(
    "/decode",
    response_model=Payloads,
    description="Decrypts payloads. A payload that cannot be decrypted, or any payload when the request has "
    "no valid API key, comes back as a readable placeholder that says why (metadata trellis-codec: "
    "not-decoded, header X-Trellis-Codec: not-decoded), so the Temporal CLI and UI show the reason "
    "instead of retrying until their deadline.",
)
async def decode(
    body: Payloads,
    request: Request,
    response: Response,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    codec: Codec,
) -> Payloads:
    payloads = _to_protos(body)
    key = credentials.credentials if credentials is not None else ""
    if not key or counted_principal(request, key) is None:
        response.headers["X-Trellis-Codec"] = "not-decoded"
        refused = "the API key was not accepted" if key else "no API key was sent"
        return _to_json(
            [_placeholder(f"{refused}; pass a Trellis API key: --codec-auth 'Bearer <key>'")] * len(payloads)
        )
    decoded = [await _decoded(codec, payload) for payload in payloads]
    if any(NOT_DECODED in p.metadata for p in decoded):
        response.headers["X-Trellis-Codec"] = "not-decoded"
    return _to_json(decoded)


@router.post("/encode", response_model=Payloads)
async def encode(body: Payloads, _: Reader, codec: Codec) -> Payloads:
    return _to_json(await codec.encode(_to_protos(body)))
