"""Use cases that write: tenants, people, keys, allowlists, 2FA; each leaves an audit event.

Callers use `from accounts import services` and `services.<name>`; the
modules of this package group the use cases by subject.
"""
from accounts.services.allowlist import (
    ip_allowed,
    ip_allowlist_add,
    ip_allowlist_remove,
    ip_allowlist_update,
    normalize_cidr,
)
from accounts.services.api_keys import (
    API_KEY_RE,
    CHECKSUM_LENGTH,
    KEY_ID_LENGTH,
    LAST_USED_WRITE_INTERVAL,
    SECRET_LENGTH,
    ApiKeyMode,
    api_key_authenticate,
    api_key_create,
    api_key_credentials,
    api_key_format,
    api_key_revoke,
    api_key_touch,
    api_key_well_formed,
)
from accounts.services.audit import SYSTEM, Actor, audit_record
from accounts.services.auth import (
    BACKUP_CODE_COUNT,
    backup_codes_regenerate,
    ip_text,
    login_failed,
    login_locked,
    login_succeeded,
    totp_device_confirm,
    totp_device_start,
    two_factor_disable,
    two_factor_verify,
)
from accounts.services.key_cache import key_cache_clear
from accounts.services.team import (
    INVITATION_TTL,
    invitation_accept,
    invitation_create,
    invitation_find,
    invitation_revoke,
    membership_add,
    membership_change_role,
    membership_remove,
)
from accounts.services.tenants import (
    HELP_REPLY_MAX,
    tenant_create,
    tenant_lock,
    tenant_set_help_reply,
    tenant_set_require_2fa,
    tenant_set_status,
    user_get_or_create,
)

__all__ = [
    "API_KEY_RE", "BACKUP_CODE_COUNT", "CHECKSUM_LENGTH", "HELP_REPLY_MAX", "INVITATION_TTL", "KEY_ID_LENGTH",
    "LAST_USED_WRITE_INTERVAL", "SECRET_LENGTH", "SYSTEM", "Actor", "ApiKeyMode", "api_key_authenticate", "api_key_create", "api_key_credentials",
    "api_key_format", "api_key_revoke", "api_key_touch", "api_key_well_formed", "audit_record", "key_cache_clear",
    "backup_codes_regenerate", "invitation_accept", "invitation_create", "invitation_find", "invitation_revoke",
    "ip_allowed", "ip_allowlist_add", "ip_allowlist_remove", "ip_allowlist_update", "ip_text", "login_failed",
    "login_locked", "login_succeeded", "membership_add", "membership_change_role", "membership_remove",
    "normalize_cidr", "tenant_create", "tenant_lock", "tenant_set_help_reply", "tenant_set_require_2fa", "tenant_set_status", "totp_device_confirm",
    "totp_device_start", "two_factor_disable", "two_factor_verify", "user_get_or_create",
]
