"""Health reports the database and Temporal (503 naming what does not answer), liveness only the
process; a database that cannot be reached is a 503 with the documented message, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.gateway import Gateway
from core.platform.database import make_engine
from tests.support.api import Api, make_settings, open_api


@pytest.fixture
async def app_and_api(postgres_url: str, temporal_address: str, task_queue: str, worker: None) -> AsyncIterator[Any]:
    settings = make_settings(postgres_url, temporal_address, task_queue)
    lifespan, client = await open_api(settings)
    app = client._transport.app  # type: ignore[attr-defined]
    try:
        yield app, Api(client), settings
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_health_reports_database_and_temporal(app_and_api: Any) -> None:
    app, api, settings = app_and_api
    healthy = await api.request("GET", "/healthz", role=None)
    assert healthy.status_code == 200 and healthy.json() == {"status": "ok", "database": "ok", "temporal": "ok"}
    assert (await api.request("GET", "/readyz", role=None)).status_code == 200

    working_engine = app.state.engine
    app.state.engine = make_engine("postgresql://postgres@/postgres?host=/nonexistent-trellis-socket-dir")
    try:
        down = await api.request("GET", "/healthz", role=None)
        assert down.status_code == 503 and down.json()["status"] == "unavailable"
        assert down.json()["database"] != "ok" and down.json()["temporal"] == "ok"
        # Anonymous callers learn what is unavailable, never the driver's text (socket path, host, user).
        assert "nonexistent" not in down.text and "socket" not in down.text and "postgres" not in down.text
        assert (await api.request("GET", "/readyz", role=None)).status_code == 503
        assert (await api.request("GET", "/livez", role=None)).status_code == 200
        # Requests that need the database say it is unavailable, with the documented message.
        listing = await api.request("GET", "/api/v1/workflow-instance", role="viewer")
        assert listing.status_code == 503
        assert listing.json() == {"error": "database_unavailable", "detail": "the database did not answer; retry later"}
    finally:
        await app.state.engine.dispose()
        app.state.engine = working_engine

    working_gateway = app.state.gateway
    nowhere = await Client.connect("127.0.0.1:1", data_converter=pydantic_data_converter, lazy=True)
    app.state.gateway = Gateway(nowhere, settings)
    try:
        down = await api.request("GET", "/healthz", role=None)
        assert down.status_code == 503 and down.json()["temporal"] != "ok" and down.json()["database"] == "ok"
        assert "127.0.0.1:1" not in down.text and ":1" not in down.json()["temporal"]
    finally:
        app.state.gateway = working_gateway
