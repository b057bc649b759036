"""Template context for portal pages: the active tenant, membership, the user's tenants, permissions."""
from accounts.roles import PERMISSIONS, role_can


def portal(request) -> dict:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    from accounts.selectors import membership_list_for_user

    role = membership.role
    return {
        "active_tenant": membership.tenant,
        "active_membership": membership,
        "user_memberships": membership_list_for_user(user=request.user),
        "can": {p.replace(".", "_"): role_can(role, p) for p in PERMISSIONS},
    }
