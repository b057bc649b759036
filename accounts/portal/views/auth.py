"""Sign in and out, and password reset (Django's views with portal templates)."""
from __future__ import annotations

from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import user_has_device

from accounts import selectors, services
from accounts.portal.decorators import ip_for, safe_next
from accounts.portal.forms import LoginForm, PasswordResetForm

BAD_CREDENTIALS = "The email address or password is not correct."
LOCKED = "Too many failed attempts. Try again later, or reset your password."


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login(request: HttpRequest) -> HttpResponse:
    """Password first; then the second factor, or its enrolment when the account requires one.

    The same message for an unknown email and a wrong password; a locked
    email + address pair is refused before the password is even checked.
    """
    if request.user.is_authenticated and request.method != "POST":
        return redirect(safe_next(request))  # the middleware asks for the second factor if it is missing
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email, ip = form.cleaned_data["email"], ip_for(request)
        if services.login_locked(email=email, ip=ip):
            form.add_error(None, f"{BAD_CREDENTIALS} {LOCKED}")
        else:
            user = auth.authenticate(request, username=email, password=form.cleaned_data["password"])
            if user is None:
                services.login_failed(email=email, ip=ip)
                form.add_error(None, BAD_CREDENTIALS)
            else:
                auth.login(request, user)  # rotates the session key
                services.login_succeeded(user=user, ip=ip)
                return redirect(_after_password(request, user))
    return render(request, "portal/auth/login.html", {"form": form, "next": request.GET.get("next", "")})


def _after_password(request: HttpRequest, user) -> str:
    target = safe_next(request)
    if user_has_device(user, confirmed=True):
        return f"{reverse('portal:2fa-verify')}?{urlencode({'next': target})}"
    if selectors.user_needs_2fa_enrolment(user=user):
        return reverse("portal:2fa-setup")
    return target


logout = auth_views.LogoutView.as_view()

password_reset = auth_views.PasswordResetView.as_view(
    form_class=PasswordResetForm,
    template_name="portal/auth/password_reset_form.html",
    email_template_name="emails/password_reset.txt",
    subject_template_name="emails/password_reset_subject.txt",
    success_url=reverse_lazy("portal:password-reset-done"),
)
password_reset_done = auth_views.PasswordResetDoneView.as_view(template_name="portal/auth/password_reset_done.html")
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="portal/auth/password_reset_confirm.html",
    success_url=reverse_lazy("portal:password-reset-complete"),
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="portal/auth/password_reset_complete.html"
)
