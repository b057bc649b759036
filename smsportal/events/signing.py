"""Standard Webhooks signing (webhook-id, webhook-timestamp, webhook-signature), secrets, and their encryption at rest.

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 with the secret's
base64-decoded bytes; the header lists one `v1,<base64 signature>` per secret, space-separated, so
an old and a new secret both sign during a rotation window. Receivers verify with any Standard
Webhooks library (`standardwebhooks.Webhook(secret).verify(body, headers)`).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as random_secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings

from smsportal import crypto

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix the spec gives every secret
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes
SHOWN_PREFIX_LENGTH = len(SECRET_PREFIX) + 4  # "whsec_AbCd": enough to tell secrets apart, useless to an attacker


class SecretUnavailable(RuntimeError):
    """A stored secret cannot be decrypted: WEBHOOK_SECRETS_KEY (or SECRET_KEY) changed without keeping the old key."""


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(SECRET_BYTES)).decode()


def secret_shown_prefix(secret: str) -> str:
    return secret[:SHOWN_PREFIX_LENGTH]


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(*, secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; `timestamp` is whole Unix seconds, new for every attempt."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    signatures = " ".join(signature(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp)), "webhook-signature": signatures}


# --- encryption at rest ---------------------------------------------------------------------------


_INFO = b"smsportal webhook signing secrets v1"


def secret_encrypt(secret: str) -> str:
    return crypto.encrypt(secret, material=crypto.key_material(settings.WEBHOOK_SECRETS_KEY), info=_INFO)


def secret_decrypt(token: str) -> str:
    try:
        return crypto.decrypt(token, material=crypto.key_material(settings.WEBHOOK_SECRETS_KEY), info=_INFO)
    except crypto.SecretUnreadable:
        raise SecretUnavailable("a webhook signing secret cannot be decrypted with WEBHOOK_SECRETS_KEY") from None


# --- secrets on a row (WebhookEndpoint, WebhookCallbackSecret) ----------------------------------------


def secret_fields(secret: str) -> dict[str, str]:
    """The columns that store a new secret: encrypted, plus the prefix shown to people."""
    return {"secret_encrypted": secret_encrypt(secret), "secret_prefix": secret_shown_prefix(secret)}


def secret_replace(holder, secret: str, *, now: datetime, window: timedelta) -> None:
    """Put `secret` in place on the (locked) row; the one it replaces keeps signing for `window`.

    Rotating twice within a window drops the oldest secret at once: two secrets sign at most.
    """
    holder.previous_secret_encrypted = holder.secret_encrypted
    holder.previous_secret_expires_at = now + window
    for name, value in secret_fields(secret).items():
        setattr(holder, name, value)


def signing_secrets(holder, *, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one inside its rotation window."""
    secrets = [secret_decrypt(holder.secret_encrypted)]
    expires = holder.previous_secret_expires_at
    if holder.previous_secret_encrypted and expires is not None and expires > now:
        secrets.append(secret_decrypt(holder.previous_secret_encrypted))
    return secrets
