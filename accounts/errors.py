"""Errors of the accounts app, each with a stable code."""
from smsportal.errors import Conflict, DomainError


class InvalidApiKey(DomainError):
    status = 401
    code = "invalid_api_key"
    message = "The API key is missing, unknown, revoked or expired."


class InsufficientScope(DomainError):
    status = 403
    code = "insufficient_scope"
    message = "This API key does not have the scope this operation needs."


class TenantSuspended(DomainError):
    status = 403
    code = "tenant_suspended"
    message = "This account is suspended. Contact your account manager."


class IpNotAllowed(DomainError):
    status = 403
    code = "ip_not_allowed"
    message = "Requests from this address are not allowed by the account's IP allowlist."


class PermissionDenied(DomainError):
    status = 403
    code = "permission_denied"
    message = "Your role does not allow this."


class LastOwner(Conflict):
    code = "last_owner"
    message = "A tenant must keep at least one owner."


class InvalidCidr(DomainError):
    code = "invalid_cidr"
    message = "Not a valid IPv4 or IPv6 address or CIDR block."


class InvalidScope(DomainError):
    code = "invalid_scope"
    message = "Unknown scope."


class AlreadyMember(Conflict):
    code = "already_member"
    message = "This person is already a member of the team."


class SignInRequired(Conflict):
    code = "sign_in_required"
    message = "An account with this email address exists: sign in to accept the invitation."


class InvalidInvitation(DomainError):
    status = 404
    code = "invalid_invitation"
    message = "This invitation is invalid, expired or already used."


class TwoFactorThrottled(DomainError):
    status = 429
    code = "two_factor_throttled"
    message = "Too many wrong codes. Wait a few seconds, then try again."
