"""Template context for portal pages: the active tenant, membership, the user's tenants, permissions, nav section."""
from accounts.roles import PERMISSIONS, role_can

# url name -> the side-navigation entry it belongs to
SECTIONS = {
    "dashboard": "dashboard",
    "team": "team", "invite": "team", "member-role": "team", "member-remove": "team", "invitation-revoke": "team",
    "api-keys": "api-keys", "api-key-create": "api-keys", "api-key-revoke": "api-keys",
    "ip-allowlist": "ip-allowlist", "ip-allowlist-remove": "ip-allowlist",
    "audit-log": "audit-log",
    "security": "security",
    "messages": "messages", "message-detail": "messages", "message-cancel": "messages",
    "message-send": "message-send",
    "templates": "templates", "template-create": "templates", "template-edit": "templates", "template-delete": "templates",
    "pools": "pools", "pool-create": "pools", "pool-edit": "pools", "pool-delete": "pools",
    **{name: "webhooks" for name in ("webhooks", "webhook-endpoint-create", "webhook-endpoint", "webhook-endpoint-rotate",
                                     "webhook-endpoint-delete", "webhook-callback-secret")},
    **{name: "numbers" for name in ("numbers", "number-search", "number-release", "lease-detail", "lease-extend",
                                    "lease-release")},
    "inbound-messages": "inbound-messages",
    **{name: "invoices" for name in ("invoices", "invoice-detail", "invoice-pdf", "credit-note-pdf")},
    "quiet-hours": "quiet-hours",
    "compliance-overview": "compliance-overview",
    "geo-permissions": "geo-permissions",
    "2fa": "account", "2fa-backup-codes": "account", "2fa-disable": "account",
}


def portal(request) -> dict:
    match = getattr(request, "resolver_match", None)
    section = ""
    if match and match.namespace == "portal":
        # every billing page (billing/portal/urls.py, and the invoices' pages beside it) is one section
        section = "billing" if (match.url_name or "").startswith("billing") else SECTIONS.get(match.url_name, "")
    context = {"portal_section": section}
    membership = getattr(request, "membership", None)
    if membership is None:
        return context
    from accounts.selectors import membership_list_for_user

    role = membership.role
    # A suspended tenant's portal is read-only (the middleware refuses its writes), so pages
    # offer only the "view" permissions: no buttons that can only lead to a refusal.
    writable = membership.tenant.is_active
    return {
        **context,
        "active_tenant": membership.tenant,
        "active_membership": membership,
        "user_memberships": membership_list_for_user(user=request.user),
        "can": {p.replace(".", "_"): role_can(role, p) and (writable or p.endswith(".view")) for p in PERMISSIONS},
    }
