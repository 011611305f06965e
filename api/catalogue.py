"""The request dependency on the API process's tool catalogue, apart from api/deps.py so that the
domains' routes that never use it do not import the step layer through it (the domain contracts)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.steps.catalogue import Catalogue


def get_catalogue(request: Request) -> Catalogue:
    """The API process's tool catalogue (built with the app: its MCP servers' tools are listed on demand)."""
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
