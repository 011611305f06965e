"""call_webhook against a real receiver on 127.0.0.1: Standard Webhooks signatures checked by the
independent ``standardwebhooks`` package, retries, dead letters, redelivery, and SSRF refusals."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from core.automation.tables import WebhookDeadLetter
from core.effects.ssrf import AllowList, BlockedDestination, check_destination, is_public
from tests.support.api import Api
from tests.support.automation import create_entity, create_rule, finished_executions, unique_type
from tests.support.servers import WebhookServer


async def fire(api: Api, url: str, **action: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    kind = unique_type("hook")
    rule = await create_rule(api, kind, [{"type": "call_webhook", "url": url, **action}])
    await create_entity(api, kind, "Payload entity", status="New", fields={"total": 42})
    [run] = await finished_executions(api, rule["id"], 1)
    return rule, run


async def dead_letters(api: Api, rule_id: str) -> list[dict[str, Any]]:
    response = await api.request("GET", f"/api/v1/webhook-dead-letters?rule_id={rule_id}", role="viewer")
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_delivery_is_signed_per_standard_webhooks(api: Api, webhook_server: WebhookServer) -> None:
    path = f"/ok/{unique_type('sig')}"
    rule, run = await fire(
        api,
        webhook_server.url(path),
        headers={"x-tenant": "{{entity.name}}"},
        body={"total": "{{entity.total}}", "kind": "{{event.event_kind}}"},
    )
    assert run["status"] == "completed"
    [hit] = webhook_server.at(path)
    verified = Webhook(rule["webhook_secret"]).verify(hit.body, hit.headers)
    assert verified == {"total": "42", "kind": "create"}
    assert hit.headers["x-tenant"] == "Payload entity" and hit.headers["webhook-id"].startswith("msg_")
    with pytest.raises(Exception):  # noqa: B017 - a tampered body fails verification
        Webhook(rule["webhook_secret"]).verify(hit.body + b" ", hit.headers)


async def test_retries_keep_the_webhook_id_and_honour_retry_after(api: Api, webhook_server: WebhookServer) -> None:
    flaky = f"/flaky/{unique_type('r')}"
    _, run = await fire(api, webhook_server.url(flaky))
    assert run["status"] == "completed"
    hits = webhook_server.at(flaky)
    assert len(hits) == 3 and len({h.headers["webhook-id"] for h in hits}) == 1

    rate = f"/rate/{unique_type('r')}"
    _, run = await fire(api, webhook_server.url(rate))
    assert run["status"] == "completed"
    first, second = webhook_server.at(rate)
    assert second.ts - first.ts >= 0.9  # Retry-After: 1, although the retry policy starts at 0.2 s
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_500_is_retried_then_dead_lettered_and_redelivered(api: Api, webhook_server: WebhookServer) -> None:
    path = f"/fail/{unique_type('d')}"
    rule, run = await fire(api, webhook_server.url(path))
    assert run["status"] == "failed" and "dead-lettered" in run["reason"]
    assert len(webhook_server.at(path)) == 3  # TRELLIS_WEBHOOK_MAX_ATTEMPTS in the tests
    [letter] = await dead_letters(api, rule["id"])
    assert letter["last_status"] == 500 and letter["attempts"] == 3
    original_id = webhook_server.at(path)[0].headers["webhook-id"]
    assert letter["webhook_id"] == original_id

    redelivered = await api.request("POST", f"/api/v1/webhook-dead-letters/{letter['id']}/redeliver", role="operator")
    assert redelivered.status_code == 200 and redelivered.json()["status"] == 500
    hits = webhook_server.at(path)
    assert hits[-1].headers["webhook-id"] == original_id and hits[-1].body == hits[0].body
    Webhook(rule["webhook_secret"]).verify(hits[-1].body, hits[-1].headers)
    [after] = await dead_letters(api, rule["id"])
    assert after["redelivered_ts"] is not None and after["redelivery_status"] == 500


async def test_redelivery_succeeds_once_the_receiver_recovers(
    api: Api, webhook_server: WebhookServer, engine: AsyncEngine
) -> None:
    path = f"/gone/{unique_type('g')}"
    rule, run = await fire(api, webhook_server.url(path))
    assert run["status"] == "failed"
    assert len(webhook_server.at(path)) == 1  # 410 is not retried
    [letter] = await dead_letters(api, rule["id"])
    assert letter["last_status"] == 410 and letter["attempts"] == 1
    # Point the stored delivery at a healthy path, as an operator would after fixing the receiver.
    ok_path = path.replace("/gone/", "/ok/")
    async with engine.begin() as conn:
        await conn.execute(
            update(WebhookDeadLetter)
            .where(WebhookDeadLetter.webhook_id == letter["webhook_id"])
            .values(url=webhook_server.url(ok_path))
        )
    redelivered = await api.request("POST", f"/api/v1/webhook-dead-letters/{letter['id']}/redeliver", role="operator")
    assert redelivered.json() == {"status": 200, "error": None}
    [hit] = webhook_server.at(ok_path)
    assert hit.headers["webhook-id"] == letter["webhook_id"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:{port}/ok/x",  # loopback, not allow-listed (only 127.0.0.1 is)
        "http://[::1]:{port}/ok/x",  # IPv6 loopback
        "http://[::ffff:127.0.0.2]:{port}/ok/x",  # IPv4-mapped IPv6
        "http://2130706434:{port}/ok/x",  # decimal 127.0.0.2
        "http://0x7f000002:{port}/ok/x",  # hex 127.0.0.2
        "http://0177.0.0.2:{port}/ok/x",  # octal 127.0.0.2
        "http://127.2:{port}/ok/x",  # shorthand 127.0.0.2
        "http://127.0.0.1:{port}/redirect/{target}",  # allowed host redirecting to loopback
    ],
)
async def test_ssrf_attempts_are_blocked(api: Api, webhook_server: WebhookServer, url: str) -> None:
    target = quote(f"http://127.0.0.2:{webhook_server.port}/ok/redirected", safe="")
    before = len(webhook_server.hits)
    rule, run = await fire(api, url.format(port=webhook_server.port, target=target))
    assert run["status"] == "failed", run
    assert "not a public address" in run["reason"] or "did not resolve" in run["reason"], run["reason"]
    assert await dead_letters(api, rule["id"]) == []  # a refused destination is not dead-lettered
    reached = webhook_server.hits[before:]
    assert all("/redirect/" in h.path for h in reached)  # only the allow-listed first hop was contacted


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "fc00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "2002:a00:1::",
        "::",
        "ff02::1",
    ],
)
def test_non_public_ranges_are_refused_without_any_traffic(address: str) -> None:
    import ipaddress

    ip = ipaddress.ip_address(address)
    assert not is_public(ip)
    with pytest.raises(BlockedDestination):
        check_destination("internal.example", [ip], AllowList([]))
    assert check_destination("internal.example", [ip], AllowList([address])) == ip


def test_public_addresses_pass() -> None:
    import ipaddress

    for address in ("93.184.216.34", "2606:4700:4700::1111"):
        assert is_public(ipaddress.ip_address(address))


async def test_timeouts_are_retried_then_dead_lettered(api: Api, webhook_server: WebhookServer) -> None:
    path = f"/slow/{unique_type('t')}"  # answers after 0.3 s
    rule, run = await fire(api, webhook_server.url(path), timeout_seconds=0.1)
    assert run["status"] == "failed" and "timed out" in run["reason"]
    assert len(webhook_server.at(path)) == 3
    [letter] = await dead_letters(api, rule["id"])
    assert letter["last_status"] is None and letter["attempts"] == 3
