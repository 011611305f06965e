"""Who may do what: the one role rule every command and every route dependency applies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.errors import ApiError
from core.platform.contracts import Role

if TYPE_CHECKING:  # api/deps.py applies ``allow`` in its route dependencies
    from api.deps import Principal


def allow(principal: Principal, *roles: Role, doing: str = "do this") -> None:
    """Admit the given roles (an admin always); anyone else is a 403 that says what was refused and
    which roles may (``doing``: "move instances", …)."""
    allowed = {"admin", *roles}
    if principal.role not in allowed:
        raise ApiError(
            403,
            "forbidden",
            f"role '{principal.role}' may not {doing}; it needs one of: {', '.join(sorted(allowed))}",
        )


def can(principal: Principal, *roles: Role) -> bool:
    """Whether ``allow`` would admit the principal: pages show an action only to those it admits (and
    the command checks again when it is posted)."""
    return principal.role in {"admin", *roles}


READERS: tuple[Role, ...] = ("viewer", "operator", "approver")
