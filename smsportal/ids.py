"""Opaque, prefixed public identifiers (`key_…`, `ipa_…`) and base62 helpers."""
import secrets
import string

BASE62 = string.digits + string.ascii_letters


def random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def to_base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def public_id(prefix: str) -> str:
    return f"{prefix}_{random_base62(20)}"


class PublicId:
    """Default factory for a model's public id field, e.g. PublicId("key")."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return public_id(self.prefix)

    def deconstruct(self) -> tuple[str, tuple[str], dict]:
        return ("smsportal.ids.PublicId", (self.prefix,), {})
