"""Webhook delivery: SSRF-checked, signed, one attempt per activity attempt (Temporal retries).

Retryable: 5xx, 429 (Retry-After honoured through the next retry delay), timeouts and connection
errors. Not retryable: other 4xx, and a destination the address policy refuses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from core.effects import webhook_signing
from core.effects.ssrf import AllowList, BlockedDestination, IPAddress, check_destination
from core.platform import errors
from core.platform.retry_after import retry_after_delay

MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Delivery:
    url: str
    method: str
    headers: dict[str, str]  # sent as they are: a value a template or reference brought in is never a secret
    body: bytes
    webhook_id: str
    secret: str | None  # None: sent unsigned (a step's http.request without signing)
    timeout_seconds: float
    # Header name -> secret name, only for values an admin wrote literally as ``secret:<name>`` in the rule or
    # definition; resolved from TRELLIS_WEBHOOK_SECRETS at the last moment.
    secret_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """A 2xx answer: its status, content type and at most ``max_response_bytes`` of its body."""

    status: int
    content_type: str
    body: bytes
    truncated: bool


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(host)
        return [literal]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def resolve_secrets(delivery: Delivery, secrets: dict[str, str]) -> dict[str, str]:
    """The delivery's headers with its authored secret references resolved from the settings, at the last
    moment (so a secret never enters a rule, an answer or a workflow history)."""
    resolved = {name: value for name, value in delivery.headers.items() if name not in delivery.secret_headers}
    for name, key in delivery.secret_headers.items():
        if key not in secrets:
            raise errors.ACTION_INVALID.error(
                f"header '{name}' names the secret '{key}', which TRELLIS_WEBHOOK_SECRETS does not define"
            )
        resolved[name] = secrets[key]
    return resolved


def stored_headers(delivery: Delivery) -> dict[str, Any]:
    """A delivery's headers as a dead letter keeps them: plain values as text, secret references as
    ``{"secret": name}`` (never the secret itself), so a redelivery resolves exactly what the admin wrote."""
    return {**delivery.headers, **{name: {"secret": key} for name, key in delivery.secret_headers.items()}}


def split_stored_headers(stored: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The inverse of ``stored_headers``: (plain headers, header name -> secret name)."""
    plain = {name: value for name, value in stored.items() if isinstance(value, str)}
    secret_headers = {
        name: str(value["secret"]) for name, value in stored.items() if isinstance(value, dict) and "secret" in value
    }
    return plain, secret_headers


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


async def deliver(
    delivery: Delivery, allow: AllowList, *, secrets: dict[str, str] | None = None, max_response_bytes: int = 65536
) -> int:
    """One attempt; returns the final 2xx status or raises ApplicationError (see ``exchange``)."""
    answer = await exchange(delivery, allow, secrets=secrets, max_response_bytes=max_response_bytes)
    return answer.status


async def exchange(
    delivery: Delivery, allow: AllowList, *, secrets: dict[str, str] | None = None, max_response_bytes: int = 65536
) -> Answer:
    """One attempt; returns the final 2xx answer or raises ApplicationError (retryable or not).

    Redirects are followed by hand (at most MAX_REDIRECTS), each destination checked again; a redirect to
    another origin carries neither the rule's custom headers nor the body. At most ``max_response_bytes``
    of an answer are read."""
    url = delivery.url
    method = delivery.method
    body = delivery.body
    custom = resolve_secrets(delivery, secrets or {})
    origin = _origin(url)
    async with httpx.AsyncClient(follow_redirects=False, timeout=delivery.timeout_seconds, trust_env=False) as http:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise errors.WEBHOOK_BLOCKED.error(f"refusing to call {url!r}: not http(s)")
            host = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                address = check_destination(host, await resolve(host, port), allow)
            except BlockedDestination as exc:
                raise errors.WEBHOOK_BLOCKED.error(str(exc)) from exc
            except OSError as exc:
                raise errors.WEBHOOK_FAILED.error(f"cannot resolve {host}: {exc}") from exc
            # Connect to the checked address; keep the name for Host and TLS SNI.
            netloc = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
            target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
            timestamp = int(time.time())
            headers = {
                **(custom if _origin(url) == origin else {}),
                "host": parts.netloc.rsplit("@", 1)[-1],
                "content-type": "application/json",
                "user-agent": "Trellis-Webhooks/1",
                **(
                    webhook_signing.headers(delivery.secret, delivery.webhook_id, timestamp, body)
                    if delivery.secret
                    else {"webhook-id": delivery.webhook_id}
                ),
            }
            try:
                async with http.stream(
                    method,
                    target,
                    content=body if method not in ("GET", "DELETE") else None,
                    headers=headers,
                    extensions={"sni_hostname": host} if parts.scheme == "https" else {},
                ) as response:
                    content, truncated = await _drain(response, max_response_bytes)
            except httpx.TimeoutException as exc:
                raise errors.WEBHOOK_FAILED.error(f"{url} timed out after {delivery.timeout_seconds}s") from exc
            except httpx.HTTPError as exc:
                raise errors.WEBHOOK_FAILED.error(f"{url} could not be reached: {exc}") from exc
            status = response.status_code
            if status in (301, 302, 303, 307, 308) and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                if status == 303 or (status in (301, 302) and method == "POST") or _origin(url) != origin:
                    method, body = "GET", b""
                continue
            if 200 <= status < 300:
                return Answer(status, response.headers.get("content-type", ""), content, truncated)
            if status == 429 or status >= 500:
                raise errors.WEBHOOK_FAILED.error(
                    f"{url} answered {status}",
                    {"status": status},
                    next_retry_delay=retry_after_delay(response.headers.get("retry-after")),
                )
            raise errors.WEBHOOK_REJECTED.error(f"{url} answered {status}; not retried", {"status": status})
    raise errors.WEBHOOK_REJECTED.error(f"{delivery.url}: more than {MAX_REDIRECTS} redirects")


async def _drain(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the (decoded) answer, and whether there was more; the rest is never
    read, and the stream closes."""
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > limit:
            return bytes(content[:limit]), True
    return bytes(content), False
