"""The in-process cache of API keys for authentication: a key, its tenant and its allowlist, for half a second.

Every /v1 request authenticates; reading the key, its tenant and its IP allowlist from PostgreSQL
each time was a quarter of an accept's CPU (issue 9). A process keeps what it read for
API_KEY_CACHE_SECONDS (0.5 by default) and reads again after that, so a change made anywhere (a
revocation, new scopes or mode, an allowlist entry, a suspended tenant) is in force in every process
of every host within that time, with no message between processes. In the process that made it, it
is in force at once: the services that change these rows clear the cache (key_cache_clear), and so
does any save or delete of the rows (signals, accounts/apps.py), e.g. from the admin.

What is cached is the rows, never a decision: the presented secret is still compared with the key's
hash on every request, and expiry is checked against the clock. A key id that matches no key is not
cached (an unknown key costs a query as before). Each request gets its own copies of the key and
tenant, so nothing one request sets on them reaches another.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Q
from django.db.models.base import ModelState

from accounts.models import ApiKey, IpAllowlistEntry


@dataclass(frozen=True)
class CachedKey:
    api_key: ApiKey  # with its tenant
    allowlist: tuple[IpAllowlistEntry, ...]  # the entries that apply to this key: tenant-wide and its own
    read_at: float  # time.monotonic() of the read


_cache: dict[str, CachedKey] = {}


def key_cached_get(*, key_id: str) -> CachedKey | None:
    """The key with this id (from the cache while fresh, else read), or None when there is none."""
    entry = _cache.get(key_id)
    if entry is None or time.monotonic() - entry.read_at >= settings.API_KEY_CACHE_SECONDS:
        entry = _read(key_id)
        if entry is None:
            _cache.pop(key_id, None)
            return None
        if settings.API_KEY_CACHE_SECONDS > 0:
            _cache[key_id] = entry
    return CachedKey(api_key=_own_copy(entry.api_key), allowlist=entry.allowlist, read_at=entry.read_at)


def key_cache_clear() -> None:
    """Forget every cached key, now and again when the current transaction commits (a request that
    read the old rows meanwhile would otherwise cache them until they expire)."""
    _cache.clear()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(_cache.clear)


def key_cache_clear_on_change(**_) -> None:
    """The post_save / post_delete receiver for keys, tenants and allowlist entries (accounts/apps.py)."""
    key_cache_clear()


def _read(key_id: str) -> CachedKey | None:
    read_at = time.monotonic()  # before the queries: the entry never looks fresher than the rows it holds
    # unscoped: the API-key lookup at authentication: the key names the tenant
    api_key = ApiKey.unscoped.select_related("tenant").filter(key_id=key_id).first()
    if api_key is None:
        return None
    return CachedKey(api_key=api_key, allowlist=tuple(_allowlist_read(api_key)), read_at=read_at)


def _allowlist_read(api_key: ApiKey) -> list[IpAllowlistEntry]:
    # unscoped: at authentication, before the key's tenant is active; filtered by that tenant
    return list(IpAllowlistEntry.unscoped.filter(tenant_id=api_key.tenant_id)
                .filter(Q(api_key=None) | Q(api_key_id=api_key.pk)))


def _own_copy(api_key: ApiKey) -> ApiKey:
    """A copy of the key and of its tenant for one request (shallow: the field values are not changed in place)."""
    mine = _shallow(api_key)
    mine._state.fields_cache = {"tenant": _shallow(api_key.tenant)}
    mine.scopes = list(api_key.scopes)
    return mine


def _shallow(instance: Model) -> Model:
    """A loaded model instance's field values in a new instance with its own state and no related objects:
    what copy.copy gives, without the pickling protocol it goes through (a tenth of an accept's CPU)."""
    clone = instance.__class__.__new__(instance.__class__)
    clone.__dict__.update(instance.__dict__)
    clone._state = ModelState()
    clone._state.db, clone._state.adding = instance._state.db, instance._state.adding
    return clone
