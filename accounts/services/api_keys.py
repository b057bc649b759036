"""API keys: format, create, revoke, authenticate, last-used."""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import zlib
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts import errors
from accounts.models import ApiKey, Tenant
from accounts.roles import ALL_SCOPES, grantable_scopes
from accounts.services.audit import Actor, audit_record
from accounts.services.key_cache import CachedKey, key_cache_clear, key_cached_get
from smsportal.ids import random_base62, to_base62
from smsportal.tenancy import tenant_scoped

# --- API keys ----------------------------------------------------------------------

logger = logging.getLogger("smsportal.auth")

# Test or live: the name other apps give a key's mode (they call accounts' services, not its models).
ApiKeyMode = ApiKey.Mode
KEY_ID_LENGTH = 12
SECRET_LENGTH = 40
CHECKSUM_LENGTH = 6
API_KEY_RE = re.compile(
    rf"^sk_(?P<mode>live|test)_(?P<key_id>[0-9A-Za-z]{{{KEY_ID_LENGTH}}})_(?P<body>[0-9A-Za-z]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}})$"
)
LAST_USED_WRITE_INTERVAL = 60  # seconds between last_used_at writes for one key


def _pepper() -> bytes:
    return _pepper_of(settings.API_KEY_PEPPER, settings.SECRET_KEY)


@lru_cache(maxsize=4)
def _pepper_of(pepper: str, secret_key: str) -> bytes:
    # Made once per setting (every API request hashes its key with it).
    if pepper:
        return pepper.encode()
    return hmac.new(secret_key.encode(), b"smsportal api key pepper", hashlib.sha256).digest()


def _hash_key(raw: str) -> str:
    # One HMAC is enough: the secret carries ~238 random bits, so there is nothing to brute-force.
    return hmac.new(_pepper(), raw.encode(), hashlib.sha256).hexdigest()


def _checksum(text: str) -> str:
    return to_base62(zlib.crc32(text.encode()), CHECKSUM_LENGTH)


def api_key_format(*, mode: str, key_id: str, secret: str) -> str:
    head = f"sk_{mode}_{key_id}_{secret}"
    return head + _checksum(head)


def api_key_well_formed(raw: str) -> re.Match | None:
    """Shape and CRC32 checksum: a typo or a random string is refused without a database query."""
    match = API_KEY_RE.match(raw)
    if match is None or not hmac.compare_digest(raw[-CHECKSUM_LENGTH:], _checksum(raw[:-CHECKSUM_LENGTH])):
        return None
    return match


def _clean_scopes(scopes: list[str] | None) -> list[str]:
    scopes = list(dict.fromkeys(scopes or ["admin"]))
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise errors.InvalidScope(f"Unknown scope {unknown[0]!r}. Known scopes: {', '.join(ALL_SCOPES)}.", field="scopes")
    return scopes


@tenant_scoped
@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    actor: Actor,
    mode: str = ApiKey.Mode.TEST,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    grantor_role: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never retrievable again.

    Without scopes the key has `admin` (every scope). When a person creates the
    key, `grantor_role` limits the scopes to what that role may grant.
    """
    scopes = _clean_scopes(scopes)
    if grantor_role is not None:
        allowed = grantable_scopes(grantor_role)
        refused = [s for s in scopes if s not in allowed]
        if refused:
            raise errors.PermissionDenied(f"Your role cannot grant the scope {refused[0]!r}.", field="scopes")
    if mode not in ApiKey.Mode.values:
        raise errors.DomainError("Mode must be 'live' or 'test'.", field="mode", code="invalid_mode")
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.DomainError("The expiry must be in the future.", field="expires_at", code="invalid_expiry")
    key_id, secret = random_base62(KEY_ID_LENGTH), random_base62(SECRET_LENGTH)
    raw = api_key_format(mode=mode, key_id=key_id, secret=secret)
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name, mode=mode, key_id=key_id, secret_hash=_hash_key(raw), last4=raw[-4:],
        scopes=scopes, created_by=actor.user, expires_at=expires_at,
    )
    audit_record(action="api_key.created", actor=actor, tenant=tenant, target=api_key,
                 changes={"name": name, "mode": mode, "scopes": scopes, "prefix": api_key.prefix})
    return api_key, raw


@tenant_scoped
@transaction.atomic
def api_key_revoke(*, tenant: Tenant, api_key: ApiKey, actor: Actor) -> ApiKey:
    """Idempotent: revoking a revoked key changes nothing and records nothing."""
    updated = ApiKey.objects.filter(pk=api_key.pk, tenant=tenant, revoked_at=None).update(revoked_at=timezone.now())
    key_cache_clear()  # refused at once in this process; the others within API_KEY_CACHE_SECONDS
    api_key.refresh_from_db()
    if updated:
        audit_record(action="api_key.revoked", actor=actor, tenant=tenant, target=api_key,
                     changes={"prefix": api_key.prefix, "name": api_key.name})
    return api_key


def api_key_authenticate(*, raw: str) -> ApiKey:
    """The usable key (with its tenant) for a presented secret, or InvalidApiKey (same error for every failure)."""
    return api_key_credentials(raw=raw).api_key


def api_key_credentials(*, raw: str) -> CachedKey:
    """api_key_authenticate's key with the allowlist entries that apply to it (tenant-wide and its own).

    From the process's key cache (accounts/services/key_cache.py): a change to the key, its tenant or
    its allowlist is in force within API_KEY_CACHE_SECONDS everywhere, at once in this process."""
    match = api_key_well_formed(raw)
    if match is None:
        raise errors.InvalidApiKey()
    cached = key_cached_get(key_id=match["key_id"])
    api_key = cached.api_key if cached else None
    if (
        api_key is None
        or not hmac.compare_digest(api_key.secret_hash, _hash_key(raw))
        or api_key.mode != match["mode"]
        or not api_key.is_usable()
    ):
        raise errors.InvalidApiKey()
    return cached


# When this process last asked the cache about a key's touch (time.time(), by key pk; wall time, which
# tests can travel: a clock step only moves one timestamp write): it asks
# at most once per key per interval, so most requests neither write nor call Redis for last_used_at.
_touch_asked: dict[int, float] = {}


def api_key_touch(*, api_key: ApiKey) -> None:
    """Keep last_used_at fresh with at most one write per key per interval (the cache decides across
    processes; each process asks it at most once per key per interval).

    Best effort: with the cache (Redis) down the request goes on and last_used_at waits."""
    now = time.time()
    if now - _touch_asked.get(api_key.pk, float("-inf")) < LAST_USED_WRITE_INTERVAL:
        return
    _touch_asked[api_key.pk] = now
    try:
        first_in_interval = cache.add(f"apikey-touch:{api_key.tenant_id}:{api_key.pk}", 1,
                                      timeout=LAST_USED_WRITE_INTERVAL)
    except Exception:  # redis.ConnectionError and kin: never fail a request over a timestamp
        logger.warning("cache unavailable; last_used_at not refreshed")
        return
    if first_in_interval:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())


def api_key_touches_forget() -> None:
    """Forget which keys this process touched (tests: each starts as a fresh process would)."""
    _touch_asked.clear()
