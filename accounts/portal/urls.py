"""/portal routes. Object ids in URLs are public ids, always resolved within the active tenant.

Open paths must match PUBLIC_PREFIXES and PRE_OTP_PREFIXES in accounts/middleware.py.
"""
from django.urls import include, path

from accounts.portal.views import api_access, auth, dashboard, team, tenant_settings, two_factor

app_name = "portal"

urlpatterns = [
    # Signed out (PUBLIC_PREFIXES)
    path("login/", auth.login, name="login"),
    path("password-reset/", auth.password_reset, name="password-reset"),
    path("password-reset/done/", auth.password_reset_done, name="password-reset-done"),
    path("reset/<uidb64>/<token>/", auth.password_reset_confirm, name="password-reset-confirm"),
    path("reset/done/", auth.password_reset_complete, name="password-reset-complete"),
    path("invitations/<public_id:token>/", team.invitation_accept, name="invitation-accept"),
    # Signed in, second factor pending (PRE_OTP_PREFIXES)
    path("logout/", auth.logout, name="logout"),
    path("2fa/verify/", two_factor.verify, name="2fa-verify"),
    path("2fa/setup/", two_factor.setup, name="2fa-setup"),
    # The person's own security
    path("2fa/", two_factor.overview, name="2fa"),
    path("2fa/backup-codes/", two_factor.backup_codes, name="2fa-backup-codes"),
    path("2fa/disable/", two_factor.disable, name="2fa-disable"),
    # The active tenant
    path("", dashboard.dashboard, name="dashboard"),
    path("switch-tenant/", dashboard.switch_tenant, name="switch-tenant"),
    path("team/", team.team, name="team"),
    path("team/invite/", team.invite, name="invite"),
    path("team/members/<public_id:membership_id>/role/", team.member_role, name="member-role"),
    path("team/members/<public_id:membership_id>/remove/", team.member_remove, name="member-remove"),
    path("team/invitations/<public_id:invitation_id>/revoke/", team.invitation_revoke, name="invitation-revoke"),
    path("api-keys/", api_access.api_keys, name="api-keys"),
    path("api-keys/new/", api_access.api_key_create, name="api-key-create"),
    path("api-keys/<public_id:api_key_id>/revoke/", api_access.api_key_revoke, name="api-key-revoke"),
    path("ip-allowlist/", api_access.ip_allowlist, name="ip-allowlist"),
    path("ip-allowlist/<public_id:entry_id>/remove/", api_access.ip_allowlist_remove, name="ip-allowlist-remove"),
    path("audit-log/", tenant_settings.audit_log, name="audit-log"),
    path("settings/security/", tenant_settings.security, name="security"),
    path("", include("messaging.portal.urls")),
    path("", include("smsportal.events.portal.urls")),
    path("", include("numbers.portal.pool_urls")),
    path("", include("numbers.portal.urls")),
    path("billing/", include("billing.portal.urls")),
    path("billing/invoices/", include("billing.portal.invoice_urls")),
    path("", include("compliance.portal.quiet_hours_urls")),
    path("compliance/geo/", include("compliance.portal.geo_urls")),
    path("compliance/", include("compliance.portal.overview_urls")),
    path("", include("compliance.portal.consents_urls")),
    path("compliance/sender-ids/", include("compliance.portal.sender_ids_urls")),
]
