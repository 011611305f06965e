"""``${…}`` references in step parameters: a small pure resolver, not a template engine.

A reference is ``${root.path}``: ``root`` is ``input``, ``context`` or a variable (an earlier step's
``assign`` or name); the path goes into objects by ``.key`` and into lists by ``[index]``.

* A string that is exactly one reference becomes the referenced value with its type (a number stays
  a number, an object an object).
* References inside a longer string are interpolated: text as it is, anything else as compact JSON.
* A reference to nothing raises ``MissingReference`` naming it.

Only the definition (admin-authored) is scanned for references, once: a value that a reference brings
in is never scanned again, so what users store (inputs, entity fields, LLM output) cannot reference or
expand anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

_SEGMENT = r"(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d{1,6}\])"
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*" + _SEGMENT + r"*)\}")
_PARTS = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
MAX_INTERPOLATED_CHARS = 100_000


class MissingReference(LookupError):
    def __init__(self, reference: str, reason: str) -> None:
        super().__init__(f"${{{reference}}} {reason}")
        self.reference = reference


def root_of(reference: str) -> str:
    return re.split(r"[.\[]", reference, maxsplit=1)[0]


def references(value: Any) -> Iterator[str]:
    """Every reference in a definition's value (for validation)."""
    if isinstance(value, str):
        for match in REFERENCE.finditer(value):
            yield match.group(1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def is_reference(value: Any) -> bool:
    """True for a string that holds at least one reference (its type is only known when resolved)."""
    return isinstance(value, str) and REFERENCE.search(value) is not None


def lookup(reference: str, scope: Mapping[str, Any]) -> Any:
    root = root_of(reference)
    if root not in scope:
        raise MissingReference(reference, f"refers to '{root}', which is not set")
    value: Any = scope[root]
    walked = root
    for key, index in _PARTS.findall(reference[len(root) :]):
        if key:
            if not isinstance(value, dict) or key not in value:
                raise MissingReference(reference, f"has no '{key}' in {walked}")
            value = value[key]
            walked += f".{key}"
        else:
            position = int(index)
            if not isinstance(value, list) or position >= len(value):
                raise MissingReference(reference, f"has no item [{position}] in {walked}")
            value = value[position]
            walked += f"[{position}]"
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def encode_url_value(value: str) -> str:
    """How a reference's value enters a url: percent-encoded, so it cannot change the path's shape,
    add query parameters or reach another host."""
    return quote(value, safe="")


def resolve(value: Any, scope: Mapping[str, Any], encode: Callable[[str], str] | None = None) -> Any:
    """``value`` with every reference replaced (see the module's rules); ``encode`` applies to each
    interpolated value (a url's)."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole and encode is None:
            return lookup(whole.group(1), scope)
        if "${" not in value:
            return value
        code = encode or (lambda text: text)
        text = REFERENCE.sub(lambda m: code(_text(lookup(m.group(1), scope))), value)
        if len(text) > MAX_INTERPOLATED_CHARS:
            raise MissingReference(value[:80], f"interpolates to more than {MAX_INTERPOLATED_CHARS} characters")
        return text
    if isinstance(value, dict):
        return {key: resolve(item, scope, encode) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, scope, encode) for item in value]
    return value


def truthy(value: Any) -> bool:
    """The seed's existence check: set and not empty, zero or false."""
    return value not in (None, False, 0, "", [], {})
