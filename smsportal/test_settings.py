"""Test settings: the real settings, with overrides for speed and safety only."""
import os

# Set before the real settings read the environment, so a developer's .env
# (written by `make run` with DEBUG on) does not leak into tests.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "t" * 60)
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")  # the test client speaks plain HTTP
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")  # receivers in tests listen on loopback
# Tests read the API key on every request (a test changes a key and asks again at once, and counts
# queries); the key cache's own tests turn it on (accounts/tests/test_key_cache.py).
os.environ.setdefault("API_KEY_CACHE_SECONDS", "0")
os.environ.setdefault("WEBHOOK_ENDPOINTS_CACHE_SECONDS", "0")
# Most tests see the hand-over a publish after commit makes (their worker runs eagerly or reads the
# test broker); the dispatcher's own tests turn "dispatcher" on (messaging/tests/test_dispatcher.py).
os.environ.setdefault("MESSAGE_HANDOFF", "publish")  # likewise for endpoints (test_endpoints_cache.py)
# make run's .env sends live messages by the routing table to its local carriers; tests keep the simulator (the
# routing tests turn routes on themselves), and the default callback base URL.
os.environ.setdefault("LIVE_CARRIER", "simulator")
os.environ.setdefault("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
# Billing prices and holds every message; the tests of other apps send without price lists or balances, and
# billing's own tests turn it on (billing/tests/conftest.py).
os.environ.setdefault("BILLING_ENABLED", "false")

from smsportal.settings import *  # noqa: E402,F403
from smsportal.settings import STORAGES  # noqa: E402

# Speed: a fast hasher (the real one is PBKDF2) and static files without a manifest.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
# Safety: the embedded broker of tests is not the one `make run` uses (its worker would eat our tasks).
if CELERY_BROKER_URL.startswith("filesystem"):  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = {  # noqa: F405
        **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
        "data_folder_in": str(VAR_DIR / "test-broker"),  # noqa: F405
        "data_folder_out": str(VAR_DIR / "test-broker"),  # noqa: F405
        "control_folder": str(VAR_DIR / "test-broker" / "control"),  # noqa: F405
    }
    (VAR_DIR / "test-broker").mkdir(parents=True, exist_ok=True)  # noqa: F405
# Safety: mail stays in memory.
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
