"""Opaque, prefixed public identifiers (`key_…`, `ipa_…`) and base62 helpers."""
import secrets
import string

from django.urls import register_converter

BASE62 = string.digits + string.ascii_letters


def random_base62(length: int) -> str:
    # One draw of a number below 62**length, written in base62: uniform like a draw per character,
    # at a tenth of the cost (a batch of 1,000 messages makes 1,000 ids).
    return to_base62(secrets.randbelow(62**length), length)


def to_base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def public_id(prefix: str) -> str:
    return f"{prefix}_{random_base62(20)}"


# Random bytes to base62 by table: a byte below 248 (= 4 * 62) is a uniform symbol (b % 62); the 8
# others are dropped, so every symbol kept is uniform and independent, as random_base62's are.
_BYTE_TO_BASE62 = bytes(ord(BASE62[b % 62]) if b < 248 else 0 for b in range(256))
_DROPPED = bytes(range(248, 256))


def public_ids(prefix: str, count: int, *, length: int = 20) -> list[str]:
    """`count` ids like public_id's, drawn together: one read of the system's randomness and one
    translation for a whole batch, instead of a draw and a base conversion per id."""
    symbols = b""
    while len(symbols) < count * length:
        need = count * length - len(symbols)
        symbols += secrets.token_bytes(need + need // 16 + 8).translate(_BYTE_TO_BASE62, _DROPPED)
    text = symbols.decode("ascii")
    return [f"{prefix}_{text[start:start + length]}" for start in range(0, count * length, length)]


class PublicId:
    """Default factory for a model's public id field, e.g. PublicId("key")."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return public_id(self.prefix)

    def deconstruct(self) -> tuple[str, tuple[str], dict]:
        return ("smsportal.ids.PublicId", (self.prefix,), {})


class PublicIdConverter:
    """The `<public_id:...>` path converter of every route that takes an id (API and portal).

    Our ids (`msg_…`, `lse_…`, invitation tokens) are base62 or URL-safe base64, so the route only
    matches those characters: anything else (a NUL byte, which PostgreSQL would refuse in a query)
    is a plain 404 from the URL resolver, like any unknown id."""

    regex = "[A-Za-z0-9_-]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


# Registered on import: every models module imports this one (PublicId), so the converter exists
# before Django loads any URLconf.
register_converter(PublicIdConverter, "public_id")
