"""Portal forms: input shape only; every rule about what is allowed lives in the services."""
from __future__ import annotations

from django import forms
from django.contrib.auth.forms import PasswordResetForm as DjangoPasswordResetForm
from django.contrib.auth.password_validation import validate_password

from accounts.models import ApiKey
from accounts.roles import Role, Scope


class LoginForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


class PasswordResetForm(DjangoPasswordResetForm):
    """Django's, except that an account without a password yet also gets the link.

    Owners created by an account manager or `manage.py create_tenant` without a
    password have an unusable one; the emailed link is how they choose their
    first. (Django skips them, which would leave them no way in at all.)
    """

    def get_users(self, email):
        from accounts.models import User

        return iter(User.objects.filter(email__iexact=email.strip(), is_active=True))


class OtpForm(forms.Form):
    """A code from the authenticator app, or a backup code."""

    token = forms.CharField(
        label="Authentication code",
        max_length=16,
        widget=forms.TextInput(attrs={
            "autocomplete": "one-time-code", "class": "input-code", "spellcheck": "false", "placeholder": "123456",
        }),
    )

    def __init__(self, *args, autofocus: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if autofocus:
            self.fields["token"].widget.attrs["autofocus"] = True


class TotpConfirmForm(forms.Form):
    token = forms.CharField(
        label="6-digit code from the app",
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*", "class": "input-code"}
        ),
    )


class SetPasswordForm(forms.Form):
    """A new account's password (invitation without an existing account)."""

    password1 = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 10 characters; not a common password, and not like your email address.",
    )
    password2 = forms.CharField(
        label="Repeat password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, email: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self) -> dict:
        data = super().clean()
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first:
            from accounts.models import User

            try:
                validate_password(first, User(email=self.email))
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class InviteForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "off", "placeholder": "name@company.com"}))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DEVELOPER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. Production backend", "autofocus": True}),
        help_text="Something that tells you where the key is used.",
    )
    mode = forms.ChoiceField(
        choices=ApiKey.Mode.choices, initial=ApiKey.Mode.TEST, widget=forms.RadioSelect,
        help_text="Test keys never reach a carrier and are never charged.",
    )
    scopes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, help_text="Only the scopes your role may grant are listed.",
        error_messages={"required": "Choose at least one scope."},
    )
    expires_at = forms.DateTimeField(
        label="Expires", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional, in UTC. Leave empty for a key that does not expire.",
    )

    def __init__(self, *args, grantable: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(scope, Scope(scope).label) for scope in grantable]


class AllowlistEntryForm(forms.Form):
    cidr = forms.CharField(
        label="Address or CIDR block", max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "203.0.113.7 or 203.0.113.0/24", "spellcheck": "false"}),
        help_text="IPv4 or IPv6; a single address or a network.",
    )
    api_key = forms.ChoiceField(label="Applies to", required=False)
    note = forms.CharField(max_length=200, required=False, widget=forms.TextInput(attrs={"placeholder": "e.g. Office"}))

    def __init__(self, *args, api_keys, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["api_key"].choices = [("", "All API keys")] + [
            (key.public_id, f"{key.name} ({key.prefix}…{key.last4})") for key in api_keys
        ]


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(required=False)

    def __init__(self, *args, actions: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "All actions")] + [(a, a) for a in actions]


class HelpReplyForm(forms.Form):
    help_reply = forms.CharField(
        label="HELP reply", required=False, max_length=320,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": 320}),
        help_text="Sent back, from the same number, to anyone who texts HELP to one of your numbers. "
                  "Empty: \u201c<your name>: reply STOP to opt out. For help contact your sender.\u201d",
    )


class RequireTwoFactorForm(forms.Form):
    require_2fa = forms.BooleanField(
        label="Require two-factor authentication for every member", required=False,
        help_text="Members without an authenticator app are asked to set one up the next time they open the portal.",
    )
