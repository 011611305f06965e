"""An independent fuzzer says the API does what its OpenAPI says: schemathesis, every check, against the
real app served over HTTP on loopback, with a worker of its own on the session's Postgres server and Temporal.

Webhooks of the rules it creates cannot leave loopback (no public destinations; the only allowed host is
the test receiver), its LLM is the scripted OpenAI-protocol server, and rate limits are lifted so the run
measures behaviour, not the limiter (the limiter has tests of its own). Bounded: a fixed number of cases
per operation and a time budget; the run stops by itself."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from api.main import create_app
from core.platform.codec import AesGcmCodec, new_key, parse_keys
from core.platform.database import make_engine
from tests.support.api import TOKENS, make_settings
from tests.support.served import serve
from worker import build_worker, condition_evaluator, domain_bundles, outbox_subscribers
from workflows.automation.dispatcher import OutboxDispatcher

ROOT = Path(__file__).resolve().parents[2]
CASES_PER_OPERATION = 10
# A longer, deeper run for hunting: TRELLIS_FUZZ_SECONDS=900 make test (or pytest tests/api/test_fuzz.py).
TIME_BUDGET_SECONDS = int(os.environ.get("TRELLIS_FUZZ_SECONDS", "150"))


@pytest.fixture
async def served_api(
    fresh_database: str, temporal_client: Client, temporal_address: str, worker: None
) -> AsyncIterator[str]:
    """The API on a database and task queue of its own, with its own worker and outbox dispatcher: what
    the fuzzer deletes and deactivates (seeded agents, demo definitions) no other test sees."""
    queue = f"trellis-fuzz-{uuid.uuid4()}"
    settings = make_settings(fresh_database, temporal_address, queue, webhook_public_destinations=False)
    engine = make_engine(fresh_database, pool_size=4)
    evaluator = condition_evaluator(settings)
    stop = asyncio.Event()
    bundles = domain_bundles(temporal_client, engine, settings, evaluator)
    dispatcher = asyncio.create_task(
        OutboxDispatcher(engine, temporal_client, settings, evaluator, outbox_subscribers(bundles)).run(stop)
    )
    app = create_app(settings)
    # The codec endpoint answers (the session's worker has no key, so Temporal payloads stay as they are).
    app.state.codec = AesGcmCodec(parse_keys(f"fuzz:{new_key()}"))
    async with build_worker(temporal_client, engine, queue, settings, evaluator, bundles), serve(app) as url:
        yield url
    stop.set()
    await dispatcher
    evaluator.close()
    await engine.dispose()


async def test_schemathesis_finds_nothing(served_api: str, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a dev dependency"
    process = await asyncio.create_subprocess_exec(
        st,
        "--config-file",
        str(ROOT / "tests" / "api" / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{served_api}/openapi.json",
        *os.environ.get("TRELLIS_FUZZ_ARGS", "").split(),
        "--max-examples",
        str(CASES_PER_OPERATION),
        "--max-time",
        str(TIME_BUDGET_SECONDS),
        "--workers",
        "1",
        "--header",
        f"Authorization: Bearer {TOKENS['admin']}",
        "--request-timeout",
        "30",
        "--report-dir",
        str(tmp_path),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=TIME_BUDGET_SECONDS + 120)
    report = output.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(report)
    assert process.returncode == 0, f"whole report in {tmp_path / 'schemathesis.txt'}\n{report[-20_000:]}"
