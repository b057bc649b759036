"""API permission: a valid key with the scope the view declares (`required_scope`)."""
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission

from accounts import errors


class HasApiKey(BasePermission):
    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if api_key is None:
            raise NotAuthenticated("Send your API key as `Authorization: Bearer <api key>`.")
        scope = required_scope(view, request.method)
        if scope and not api_key.has_scope(scope):
            raise errors.InsufficientScope(f"This API key needs the scope {scope!r}.")
        return True


def required_scope(view, method: str) -> str | None:
    """The scope `view` requires for `method` (also what the OpenAPI schema documents)."""
    by_method = getattr(view, "required_scopes", None)
    if by_method:
        return by_method.get(method, by_method.get("*"))
    return getattr(view, "required_scope", None)
