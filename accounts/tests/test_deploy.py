"""Production settings: `check --deploy` is clean, a missing secret fails at start, and the security settings hold.

Each case starts a fresh interpreter with an explicit environment, so neither
this process's test settings nor a developer's .env (read with overwrite=False,
so explicit variables win) decide the outcome.
"""
from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TWELVE_HOURS = 12 * 3600

# Settings the process environment must not leak into a production-like run.
_APP_VARIABLES = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
                  "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
                  "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_AGE", "TRUSTED_PROXIES", "CSRF_TRUSTED_ORIGINS",
                  "API_KEY_PEPPER", "EMAIL_URL", "PUBLIC_BASE_URL", "DJANGO_SETTINGS_MODULE"}

# Run the real settings as if no .env existed (for the one case where a .env value would mask the outcome).
WITHOUT_DOTENV = "import environ; environ.Env.read_env = lambda *args, **kwargs: None\n"

SETTINGS_PROBE = WITHOUT_DOTENV + """
import json
import django
django.setup()
from django.conf import settings
names = ["DEBUG", "SECRET_KEY", "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE",
         "SESSION_COOKIE_AGE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT",
         "SECURE_PROXY_SSL_HEADER", "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF", "ALLOWED_HOSTS",
         "OTP_ADMIN_HIDE_SENSITIVE_DATA"]
print(json.dumps({name: getattr(settings, name) for name in names}))
"""


def _secret_key() -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(64))


def _production_env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _APP_VARIABLES}
    env.update(DEBUG="false", SECRET_KEY=_secret_key(), ALLOWED_HOSTS="sms.example.com",
               PUBLIC_BASE_URL="https://sms.example.com", DJANGO_SETTINGS_MODULE="smsportal.settings")
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _settings(**overrides: str | None) -> dict:
    result = _run(["-c", SETTINGS_PROBE], _production_env(**overrides))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_passes_the_deployment_checks_without_a_warning():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deployment_checks_warn_of_a_public_base_url_carriers_cannot_use():
    for value in (None, "http://sms.example.com", "https://127.0.0.1:8000"):
        result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                      _production_env(PUBLIC_BASE_URL=value))
        assert result.returncode != 0 and "smsportal.W001" in result.stdout + result.stderr, value


def test_it_refuses_to_start_without_a_secret_key():
    result = _run(["-c", WITHOUT_DOTENV + "import django; django.setup()"], _production_env(SECRET_KEY=None))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


def test_it_refuses_manage_py_without_a_secret_key(tmp_path):
    # The same through manage.py; READ_DOT_ENV=false keeps a local .env (from `make run`/`make test`) out of it.
    result = _run(["manage.py", "check"], {**_production_env(SECRET_KEY=None), "READ_DOT_ENV": "false"})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr


def test_the_migration_check_runs_in_a_checkout_without_a_secret_key():
    # A clean clone has no .env and no SECRET_KEY: the migration commands read only models and migration
    # files (manage.py KEYLESS_COMMANDS), so they run with a throwaway key and say what they found.
    env = {**_production_env(SECRET_KEY=None, DATABASE_URL=None), "READ_DOT_ENV": "false"}

    check = _run(["manage.py", "makemigrations", "--check", "--dry-run"], env)
    listing = _run(["manage.py", "showmigrations", "events"], env)

    assert (check.returncode, check.stdout.strip()) == (0, "No changes detected"), check.stderr
    assert listing.returncode == 0 and "0001_initial" in listing.stdout, listing.stderr


def test_a_keyless_command_never_replaces_a_given_key():
    # With a key in the environment, even a keyless command runs with that key, not a throwaway.
    given = _secret_key()
    probe = (f"import manage, os, sys; sys.argv = ['manage.py', 'makemigrations']; os.environ['SECRET_KEY'] = {given!r}\n"
             "import django.core.management as m; m.execute_from_command_line = lambda argv: None\n"
             "manage.main(); print(os.environ['SECRET_KEY'])")
    result = _run(["-c", probe], _production_env(SECRET_KEY=None))

    assert result.returncode == 0 and result.stdout.strip() == given, result.stderr


def test_it_uses_secure_cookies_hsts_and_short_sessions_in_production():
    values = _settings()

    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["SESSION_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert 0 < values["SESSION_COOKIE_AGE"] <= TWELVE_HOURS
    assert len(values["SECRET_KEY"]) >= 50
    assert values["ALLOWED_HOSTS"] == ["sms.example.com"]
    assert values["OTP_ADMIN_HIDE_SENSITIVE_DATA"] is True


def test_it_believes_the_forwarded_scheme_only_behind_a_trusted_proxy():
    # The setting only; that the header is believed from the trusted proxy alone, and not from another
    # peer, is shown by test_clientip.py and, through the real servers, test_proxy_headers_server.py.
    assert _settings()["SECURE_PROXY_SSL_HEADER"] is None
    assert _settings(TRUSTED_PROXIES="10.0.0.0/8")["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_it_has_no_hosts_by_default_in_production():
    assert _settings(ALLOWED_HOSTS=None)["ALLOWED_HOSTS"] == []
