"""Standard Webhooks secrets (``whsec_<base64>``), decoded as the specification's libraries decode them.
Here, below every domain, so the settings can check each declared secret when they load."""

from __future__ import annotations

import base64
import binascii

PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; the padding may be left off, as the ``standardwebhooks``
    libraries allow. ValueError for a secret that is empty or not base64."""
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX) + "==", validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64 after '{PREFIX}': {exc}") from exc
    if not key:
        raise ValueError("the secret is empty")
    return key
