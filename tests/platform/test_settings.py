"""API key parsing: malformed TRELLIS_API_KEYS fails at start with a message naming the entry."""

from __future__ import annotations

import pytest

from core.platform.embedded import sqlalchemy_url
from core.platform.settings import parse_api_keys


def test_parses_token_role_and_optional_name() -> None:
    keys = parse_api_keys("aaaaaaaaaaaaaaaa:admin, bbbbbbbbbbbbbbbb:viewer:dash-board,")
    assert [(k.role, k.name) for k in keys] == [("admin", "admin-1"), ("viewer", "dash-board")]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("aaaaaaaaaaaaaaaa", "entry 1 must look like 'token:role'"),
        ("aaaaaaaaaaaaaaaa:root", "role 'root'; use one of admin, operator, approver, viewer"),
        ("short:admin", "at least 16 characters"),
        ("aaaaaaaaaaaaaaaa:admin,x:y:z:w", "entry 2 must look like"),
    ],
)
def test_rejects_malformed_entries(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_api_keys(raw)


def test_pgserver_uri_becomes_an_sqlalchemy_url() -> None:
    assert (
        sqlalchemy_url("postgresql://postgres:@/postgres?host=/tmp/pg")
        == "postgresql+psycopg://postgres@/postgres?host=/tmp/pg"
    )
    assert sqlalchemy_url("postgresql://u:@db:5433/x") == "postgresql+psycopg://u@db:5433/x"
