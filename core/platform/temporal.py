"""The one way Trellis builds a Temporal client: the pydantic data converter (with payload encryption
when TRELLIS_PAYLOAD_KEYS is set), the settings' address and namespace."""

from __future__ import annotations

from temporalio.client import Client

from core.platform.codec import data_converter
from core.platform.settings import Settings


async def connect_client(settings: Settings) -> Client:
    if not settings.temporal_address:
        raise RuntimeError(
            "TRELLIS_TEMPORAL_ADDRESS is not set: start Trellis with `make run`, or point it at a Temporal server"
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.payload_keys),
    )
