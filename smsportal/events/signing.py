"""Standard Webhooks signing (webhook-id, webhook-timestamp, webhook-signature), secrets, and their encryption at rest.

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 with the secret's
base64-decoded bytes; the header lists one `v1,<base64 signature>` per secret, space-separated, so
an old and a new secret both sign during a rotation window. Receivers verify with any Standard
Webhooks library (`standardwebhooks.Webhook(secret).verify(body, headers)`).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets as random_secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

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


def _key_material() -> tuple[str, ...]:
    configured = tuple(k.strip() for k in settings.WEBHOOK_SECRETS_KEY.split(",") if k.strip())
    return configured or (settings.SECRET_KEY,)


@functools.lru_cache(maxsize=8)
def _fernet(material: tuple[str, ...]) -> MultiFernet:
    def derive(value: str) -> Fernet:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"smsportal webhook signing secrets v1")
        return Fernet(base64.urlsafe_b64encode(hkdf.derive(value.encode())))

    return MultiFernet([derive(value) for value in material])


def secret_encrypt(secret: str) -> str:
    return _fernet(_key_material()).encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _fernet(_key_material()).decrypt(token.encode()).decode()
    except InvalidToken:
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
