"""Encryption at rest of the secrets we must be able to read back (webhook signing secrets, carrier credentials).

Fernet (AES-128-CBC + HMAC-SHA256) under keys derived with HKDF from a comma-separated setting: the first key
encrypts, every one decrypts, so a key is rotated by putting the new one in front. Each use has its own HKDF
`info`, so the same setting never gives two uses the same key.
"""
from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretUnreadable(RuntimeError):
    """A stored secret cannot be decrypted with the configured keys (a key was dropped too soon)."""


def key_material(setting_value: str) -> tuple[str, ...]:
    """The keys a setting names, or SECRET_KEY when it names none."""
    configured = tuple(k.strip() for k in setting_value.split(",") if k.strip())
    return configured or (settings.SECRET_KEY,)


@functools.lru_cache(maxsize=16)
def fernet(material: tuple[str, ...], info: bytes) -> MultiFernet:
    def derive(value: str) -> Fernet:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
        return Fernet(base64.urlsafe_b64encode(hkdf.derive(value.encode())))

    return MultiFernet([derive(value) for value in material])


def encrypt(plain: str, *, material: tuple[str, ...], info: bytes) -> str:
    return fernet(material, info).encrypt(plain.encode()).decode()


def decrypt(token: str, *, material: tuple[str, ...], info: bytes) -> str:
    try:
        return fernet(material, info).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("a stored secret cannot be decrypted with the configured keys") from None
