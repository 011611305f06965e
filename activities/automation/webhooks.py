"""Webhook delivery: SSRF-checked, signed, one attempt per activity attempt (Temporal retries).

Retryable: 5xx, 429 (Retry-After honoured through the next retry delay), timeouts and connection
errors. Not retryable: other 4xx, and a destination the address policy refuses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from temporalio.exceptions import ApplicationError

from core.automation import webhook_signing
from core.automation.ssrf import AllowList, BlockedDestination, IPAddress, check_destination
from core.platform import errors
from core.platform.retry_after import retry_after_delay

MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Delivery:
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    webhook_id: str
    secret: str
    timeout_seconds: float


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(host)
        return [literal]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def deliver(delivery: Delivery, allow: AllowList) -> int:
    """One attempt; returns the final 2xx status or raises ApplicationError (retryable or not)."""
    url = delivery.url
    method = delivery.method
    body = delivery.body
    async with httpx.AsyncClient(follow_redirects=False, timeout=delivery.timeout_seconds, trust_env=False) as http:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ApplicationError(
                    f"refusing to call {url!r}: not http(s)", type=errors.WEBHOOK_BLOCKED.type, non_retryable=True
                )
            host = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                address = check_destination(host, await resolve(host, port), allow)
            except BlockedDestination as exc:
                raise ApplicationError(str(exc), type=errors.WEBHOOK_BLOCKED.type, non_retryable=True) from exc
            except OSError as exc:
                raise ApplicationError(f"cannot resolve {host}: {exc}", type=errors.WEBHOOK_FAILED.type) from exc
            # Connect to the checked address; keep the name for Host and TLS SNI.
            netloc = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
            target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
            timestamp = int(time.time())
            headers = {
                **delivery.headers,
                "host": parts.netloc.rsplit("@", 1)[-1],
                "content-type": "application/json",
                "user-agent": "Trellis-Webhooks/1",
                **webhook_signing.headers(delivery.secret, delivery.webhook_id, timestamp, body),
            }
            try:
                response = await http.request(
                    method,
                    target,
                    content=body if method not in ("GET", "DELETE") else None,
                    headers=headers,
                    extensions={"sni_hostname": host} if parts.scheme == "https" else {},
                )
            except httpx.TimeoutException as exc:
                raise ApplicationError(
                    f"{url} timed out after {delivery.timeout_seconds}s", type=errors.WEBHOOK_FAILED.type
                ) from exc
            except httpx.HTTPError as exc:
                raise ApplicationError(f"{url} could not be reached: {exc}", type=errors.WEBHOOK_FAILED.type) from exc
            status = response.status_code
            if status in (301, 302, 303, 307, 308) and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, body = "GET", b""
                continue
            if 200 <= status < 300:
                return status
            if status == 429 or status >= 500:
                raise ApplicationError(
                    f"{url} answered {status}",
                    {"status": status},
                    type=errors.WEBHOOK_FAILED.type,
                    next_retry_delay=retry_after_delay(response.headers.get("retry-after")),
                )
            raise ApplicationError(
                f"{url} answered {status}; not retried",
                {"status": status},
                type=errors.WEBHOOK_REJECTED.type,
                non_retryable=True,
            )
    raise ApplicationError(
        f"{delivery.url}: more than {MAX_REDIRECTS} redirects", type=errors.WEBHOOK_REJECTED.type, non_retryable=True
    )
