"""The one way Trellis builds a Temporal client: pydantic data converter, settings' address."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from core.platform.settings import Settings


async def connect_client(settings: Settings) -> Client:
    if not settings.temporal_address:
        raise RuntimeError(
            "TRELLIS_TEMPORAL_ADDRESS is not set: start Trellis with `make run`, or point it at a Temporal server"
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
