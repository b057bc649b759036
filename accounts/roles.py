"""The one permission matrix: which role may do what, and which API scopes it may grant.

The portal checks `role_can(role, permission)`; the API checks key scopes, and
a key can only be given scopes its creator's role may grant (`grantable_scopes`).
The README's "Roles and permissions" table is generated from this module.
"""
from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    BILLING = "billing", "Billing"
    VIEWER = "viewer", "Viewer"


class Scope(models.TextChoices):
    MESSAGES_SEND = "messages:send", "Send messages"
    MESSAGES_READ = "messages:read", "Read messages"
    NUMBERS = "numbers", "Numbers"
    COMPLIANCE = "compliance", "Compliance"
    BILLING_READ = "billing:read", "Read billing"
    ADMIN = "admin", "Admin (all scopes)"


ALL_SCOPES = [s.value for s in Scope]

_O, _A, _D, _B, _V = Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.BILLING, Role.VIEWER

# permission -> roles that hold it
PERMISSIONS: dict[str, frozenset[str]] = {
    "dashboard.view": frozenset({_O, _A, _D, _B, _V}),
    "team.view": frozenset({_O, _A, _D, _B, _V}),
    "team.manage": frozenset({_O, _A}),
    "api_keys.view": frozenset({_O, _A, _D, _V}),
    "api_keys.manage": frozenset({_O, _A, _D}),
    "allowlist.view": frozenset({_O, _A, _D}),
    "allowlist.manage": frozenset({_O, _A}),
    "audit.view": frozenset({_O, _A}),
    "security.manage": frozenset({_O}),
    "messages.view": frozenset({_O, _A, _D, _B, _V}),
    "messages.send": frozenset({_O, _A, _D}),
    "numbers.view": frozenset({_O, _A, _D, _B, _V}),
    "numbers.manage": frozenset({_O, _A, _D}),
    "compliance.view": frozenset({_O, _A, _D, _B, _V}),
    "compliance.manage": frozenset({_O, _A}),
    "billing.view": frozenset({_O, _A, _B}),
    "billing.manage": frozenset({_O, _B}),
}

# scope -> permission a key creator needs to grant it
SCOPE_PERMISSION: dict[str, str] = {
    Scope.MESSAGES_SEND: "messages.send",
    Scope.MESSAGES_READ: "messages.view",
    Scope.NUMBERS: "numbers.manage",
    Scope.COMPLIANCE: "compliance.manage",
    Scope.BILLING_READ: "billing.view",
    Scope.ADMIN: "team.manage",
}


def role_can(role: str | None, permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return role in PERMISSIONS[permission]


def grantable_scopes(role: str | None) -> list[str]:
    return [scope for scope in ALL_SCOPES if role_can(role, SCOPE_PERMISSION[scope])]


def scopes_allow(granted: list[str], required: str) -> bool:
    """`admin` implies every scope."""
    return Scope.ADMIN in granted or required in granted


def matrix_markdown() -> str:
    roles = [r.value for r in Role]
    lines = ["| permission | " + " | ".join(roles) + " |", "|---" * (len(roles) + 1) + "|"]
    for permission, holders in PERMISSIONS.items():
        cells = ["yes" if r in holders else "" for r in roles]
        lines.append(f"| `{permission}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
