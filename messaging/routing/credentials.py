"""A carrier's secrets at rest: one Fernet token of their JSON (smsportal/crypto.py), keys from CARRIER_SECRETS_KEY.

Decrypted only where a connector is built (routing/carriers.py: carrier_config); nothing else reads them.
"""
from __future__ import annotations

import json
from collections.abc import Mapping

from django.conf import settings

from smsportal import crypto

_INFO = b"smsportal carrier credentials v1"


def credentials_encrypt(credentials: Mapping[str, str]) -> str:
    if not credentials:
        return ""
    plain = json.dumps(dict(sorted(credentials.items())), separators=(",", ":"))
    return crypto.encrypt(plain, material=crypto.key_material(settings.CARRIER_SECRETS_KEY), info=_INFO)


def credentials_decrypt(token: str) -> dict[str, str]:
    if not token:
        return {}
    return json.loads(crypto.decrypt(token, material=crypto.key_material(settings.CARRIER_SECRETS_KEY), info=_INFO))


def credentials_replaced(token: str, given: Mapping[str, str | None]) -> tuple[str, list[str]]:
    """The stored secrets with `given` applied (a key set to None is removed), encrypted again, and the names
    that changed (for the audit log: never a value)."""
    stored = credentials_decrypt(token)
    for key, value in given.items():
        if value is None:
            stored.pop(key, None)
        else:
            stored[key] = value
    return credentials_encrypt(stored), sorted(given)
