"""Dependencies: settings, engine, the Temporal gateway and the authenticated principal."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from api.commands import rights
from api.errors import ApiError
from api.gateway import Gateway
from api.ratelimits import RateLimits
from core.platform import idempotency
from core.platform.contracts import Role
from core.platform.settings import Settings


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]


# A client's key for a request it may retry (step executions, work-item changes): the same key answers
# the first result and applies nothing twice.
async def checked_idempotency_key(
    request: Request,
    principal: Annotated[Principal, Depends(get_principal)],
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            pattern=r"^[A-Za-z0-9._:-]+$",
            description="Retrying with the same key answers the first result and applies nothing twice; the "
            "same key with another request (method, path or body) is refused with 422",
        ),
    ] = None,
) -> str | None:
    """The request's Idempotency-Key, once it is known to name this request: a key is the caller's, and
    reusing it for a different request is refused instead of silently answering the first one."""
    if idempotency_key is None:
        return None
    engine: AsyncEngine = request.app.state.engine
    async with engine.begin() as conn:
        first = await idempotency.first_use(
            conn, principal.name, idempotency_key, request.method, request.url.path, await request.body()
        )
    if first is not None:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"this Idempotency-Key was first used for another request ({first}, or the same with another body); "
            "nothing was done: send a new key for a new request, or repeat the first request exactly",
        )
    return idempotency_key


IdempotencyKey = Annotated[str | None, Depends(checked_idempotency_key)]

bearer = HTTPBearer(auto_error=False, description="An API key from TRELLIS_API_KEYS")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def principal_of(request: Request, key: str) -> Principal | None:
    """Whose API key this is (None for an unknown key); the API and the console both ask here."""
    presented = _digest(key)
    keys: dict[bytes, Principal] = request.app.state.api_keys
    # Compare against every key in constant time so timing reveals nothing about which keys exist.
    match: Principal | None = None
    for digest, principal in keys.items():
        if hmac.compare_digest(digest, presented):
            match = principal
    return match


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <key>' (keys are configured in TRELLIS_API_KEYS)",
        )
    match = counted_principal(request, credentials.credentials)
    if match is None:
        raise ApiError(401, "unauthorized", "unknown API key")
    return match


def counted_principal(request: Request, key: str) -> Principal | None:
    """Whose key this is, its request counted against the key's rate limit (None for an unknown key)."""
    match = principal_of(request, key)
    if match is not None:
        rate_limits: RateLimits = request.app.state.rate_limits
        rate_limits.hit(rate_limits.requests, match.name, "requests")
    return match


def require(*roles: Role) -> object:
    """A dependency that admits the given roles (admin is always admitted)."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        rights.allow(principal, *roles)
        return principal

    return Depends(check)


Reader = Annotated[Principal, require("viewer", "operator", "approver")]
Operator = Annotated[Principal, require("operator")]
Approver = Annotated[Principal, require("approver")]
Admin = Annotated[Principal, require()]


def key_table(settings: Settings) -> dict[bytes, Principal]:
    return {_digest(k.token): Principal(name=k.name, role=k.role) for k in settings.parsed_api_keys()}  # type: ignore[arg-type]


def ensure_starter(principal: Principal, started_by: str | None, what: str, action: str) -> None:
    """One ownership rule for runs people start (agent sessions, step executions): only the principal who
    started one, or an admin, may cancel it or run it again."""
    if principal.role != "admin" and started_by != principal.name:
        raise ApiError(
            403,
            "forbidden",
            f"{what} was started by '{started_by or 'Trellis'}'; only its starter or an admin may {action} it",
        )
