"""Settings, all from the environment (django-environ); see the README's table."""
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# A local .env (written by `make run`) is read when present; real deployments
# set the process environment instead.
# READ_DOT_ENV=false ignores it (tests of production behaviour in a developer checkout).
if environ.Env().bool("READ_DOT_ENV", default=True):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# No production default for the secret: with DEBUG off a missing key fails at start.
SECRET_KEY = env.str("SECRET_KEY") if not DEBUG else env.str("SECRET_KEY", default="dev-insecure-" + "x" * 50)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# CIDRs of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto we believe (accounts/clientip.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# Pepper for API key hashes; defaults to a value derived from SECRET_KEY.
API_KEY_PEPPER = env.str("API_KEY_PEPPER", default="")
# How long a process authenticates from the API key, tenant and allowlist it read (accounts/services/key_cache.py):
# a revocation or any other change to them is in force everywhere within this many seconds. 0 reads every time.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=0.5)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "smsportal",
    "accounts",
    "smsportal.events",
    "messaging",
    "numbers",
    "compliance",
    "billing",
]

MIDDLEWARE = [
    # First: drops the forwarding headers of a peer that is not a trusted proxy, before anything reads them.
    "accounts.middleware.ClientIpMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "smsportal.middleware.StaticFilesMiddleware",  # WhiteNoise, usable under ASGI
    "smsportal.api.middleware.ApiJsonErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "smsportal.middleware.PortalMessageMiddleware",  # Django's messages, but not under /v1
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.middleware.PortalAccessMiddleware",
    "smsportal.middleware.ContentSecurityPolicyMiddleware",
]

# /v1's chain (smsportal/handlers.py): MIDDLEWARE without what only a browser's request needs
# (sessions, CSRF, the signed-in user, 2FA, notices, framing, portal access). Same order.
API_MIDDLEWARE = [
    "accounts.middleware.ClientIpMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "smsportal.api.middleware.ApiJsonErrorMiddleware",
    "django.middleware.common.CommonMiddleware",
    "smsportal.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "smsportal.urls"
WSGI_APPLICATION = "smsportal.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.portal.context.portal",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
# Set by smsportal/asgi.py: the web server runs ASGI (the worker and beat do not).
SERVES_ASGI = env.bool("SMSPORTAL_ASGI", default=False)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'smsportal.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the
    # writer, IMMEDIATE transactions and a busy timeout queue writers instead
    # of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
elif SERVES_ASGI and env.bool("DB_POOL", default=True):
    # The web server (smsportal/asgi.py): the long-poll's checks borrow a connection for one query
    # from any thread, which a pool makes cheap; sync requests borrow one per request.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
        # How long a request waits for a connection; with the database down, its 503 comes after this.
        "timeout": env.float("DB_POOL_TIMEOUT", default=10)}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The single send's insert is prepared on the server once per connection (smsportal/bulk.py,
# prepared_fetchone); Django's own statements are bound on the client and never prepared, whatever
# this threshold. Turn it off behind a PgBouncer older than 1.21 in transaction mode.
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 2**31 - 1
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits, last-used throttling) --------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "smsportal.cache.RedisCache",  # one client per process (smsportal/cache.py)
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="smsportal"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"data_folder_in": str(BROKER_DIR), "data_folder_out": str(BROKER_DIR), "store_processed": False,
     "control_folder": str(BROKER_DIR / "control"),
     # The filesystem transport polls; the default second between polls makes every hop of a message slow.
     "polling_interval": 0.1}
    if CELERY_BROKER_URL.startswith("filesystem")
    else {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        # Poll queues in the order a worker lists them (otp first), not round robin.
        "queue_order_strategy": "priority",
    }
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Dispatch goes to the queue of the message's type; workers list otp first.
CELERY_TASK_DEFAULT_QUEUE = "default"

# --- Sending --------------------------------------------------------------------------
# Carrier for live-mode messages until routing exists; test-mode keys always use the simulator.
LIVE_CARRIER = env.str("LIVE_CARRIER", default="simulator")
SIMULATOR_RECEIPT_DELAY = env.float("SIMULATOR_RECEIPT_DELAY", default=1.0)
# A message left in sending, or with a dispatch task published this long ago that never ran, is
# dispatched again by the sweeper.
MESSAGE_STUCK_SECONDS = env.int("MESSAGE_STUCK_SECONDS", default=120)
# A queued message whose dispatch task did not reach the broker (it was down) is handed over by the
# sweeper (every 5 s) once it is this old: dispatched within this plus 5 s of the broker being back.
MESSAGE_DISPATCH_PICKUP_SECONDS = env.int("MESSAGE_DISPATCH_PICKUP_SECONDS", default=10)
# How accept hands queued messages to dispatch: "dispatcher" (no broker call in the request: the
# dispatcher process, `manage.py dispatcher`, claims committed queued rows in batches and publishes one
# task per claim; messaging/dispatcher.py), or "publish" (a Celery publish after each commit).
MESSAGE_HANDOFF = env.str("MESSAGE_HANDOFF", default="dispatcher")
# The dispatcher's wait between claims when it found nothing to hand over.
DISPATCHER_POLL_SECONDS = env.float("DISPATCHER_POLL_SECONDS", default=0.02)
# A sent message without a receipt this long is asked about at its carrier where it allows it (the
# simulator answers again), then every this long; one whose receipt never comes ends undelivered
# (receipt_timeout) after its validity period plus the grace time.
MESSAGE_RECEIPT_OVERDUE_SECONDS = env.int("MESSAGE_RECEIPT_OVERDUE_SECONDS", default=60)
MESSAGE_RECEIPT_GRACE_SECONDS = env.int("MESSAGE_RECEIPT_GRACE_SECONDS", default=3600)
# Messages one tenant may send to one recipient number ("10/m"; s, m, h or d), in every front door's
# accept (messaging/accept/steps.py); empty lifts the limit. Against pumping one number (SMS toll fraud).
MESSAGE_DESTINATION_RATE_LIMIT = env.str("MESSAGE_DESTINATION_RATE_LIMIT", default="10/m")

# --- Billing ------------------------------------------------------------------------
# Rating and prepaid holds at accept (billing/, docs/billing.md): every message gets a price from the
# price lists (a destination without one is refused, 422 no_price_for_destination) and a live one holds
# it on the tenant's balance (402 insufficient_balance). Off: messages have no price and nothing is held.
BILLING_ENABLED = env.bool("BILLING_ENABLED", default=True)
# The currency of a tenant's balance until it has one, and of the default price list seed_demo loads.
BILLING_DEFAULT_CURRENCY = env.str("BILLING_DEFAULT_CURRENCY", default="EUR")
# Each process keeps the price lists in memory this long (a change in this process clears it at once).
BILLING_PRICE_CACHE_SECONDS = env.float("BILLING_PRICE_CACHE_SECONDS", default=30.0)
# Monthly invoices (billing/invoices.py): the issuer printed on each (copied in when it is made, so a change
# here changes no invoice already made), its number series (SP-2026-000123, CN-2026-000004: per issuer and
# year, without gaps) and the payment note under the totals.
INVOICE_ISSUER_NAME = env.str("INVOICE_ISSUER_NAME", default="smsportal Ltd")
INVOICE_ISSUER_ADDRESS = env.str("INVOICE_ISSUER_ADDRESS", default="1 Example Street\nLondon EC1A 1BB\nUnited Kingdom")
INVOICE_ISSUER_TAX_ID = env.str("INVOICE_ISSUER_TAX_ID", default="")
INVOICE_ISSUER_EMAIL = env.str("INVOICE_ISSUER_EMAIL", default="billing@smsportal.localhost")
INVOICE_NUMBER_PREFIX = env.str("INVOICE_NUMBER_PREFIX", default="SP")
CREDIT_NOTE_NUMBER_PREFIX = env.str("CREDIT_NOTE_NUMBER_PREFIX", default="CN")
INVOICE_PAYMENT_NOTE = env.str("INVOICE_PAYMENT_NOTE", default=(
    "The charges listed were taken from your prepaid balance as they were incurred. Tax shown is payable "
    "within 14 days of the invoice date; quote the invoice number with your payment."))
# true: the monthly run issues each invoice at once (a prepaid account's invoice states what was already
# charged); false: it makes drafts that account managers check and issue in admin.
INVOICES_ISSUE_ON_GENERATE = env.bool("INVOICES_ISSUE_ON_GENERATE", default=True)

# --- Compliance ---------------------------------------------------------------------
# Each process keeps the country rules (compliance/countries.py) in memory this long; a change in this process
# (admin, country_rules_load) clears it at once.
COMPLIANCE_CACHE_SECONDS = env.float("COMPLIANCE_CACHE_SECONDS", default=30.0)

# --- Numbers ------------------------------------------------------------------------
# A released or expired number rests this long before anyone else can hold it, so the next
# holder never receives codes meant for the last one.
NUMBER_QUARANTINE_SECONDS = env.int("NUMBER_QUARANTINE_SECONDS", default=24 * 3600)
# `number.lease_expiring` goes out this long before a lease ends, unless the lease asks otherwise
# (`expiring_notice_seconds`, 0 = never).
NUMBER_LEASE_EXPIRING_NOTICE_SECONDS = env.int("NUMBER_LEASE_EXPIRING_NOTICE_SECONDS", default=60)

# --- Webhooks -----------------------------------------------------------------------
# Off in production: a webhook target on a loopback, private, link-local, multicast or reserved
# address is refused (smsportal/outbound.py). `make run` and the tests turn it on for loopback receivers.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
# How long a process emits message events (message.queued at accept, the batched transitions) to the webhook
# endpoints it read (smsportal/events/selectors.py): an endpoint added, changed or removed elsewhere gets (or
# stops getting) those events within this many seconds; at once in the process that saved it.
WEBHOOK_ENDPOINTS_CACHE_SECONDS = env.float("WEBHOOK_ENDPOINTS_CACHE_SECONDS", default=1.0)
# Whole-request budget of one delivery attempt (connect, send, response), in seconds.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Key(s) that encrypt webhook signing secrets at rest, comma-separated: the first encrypts, every one
# decrypts (add a new key in front to rotate). Empty: derived from SECRET_KEY.
WEBHOOK_SECRETS_KEY = env.str("WEBHOOK_SECRETS_KEY", default="")

# Key(s) that encrypt carrier credentials at rest (passwords, tokens), comma-separated, as WEBHOOK_SECRETS_KEY.
CARRIER_SECRETS_KEY = env.str("CARRIER_SECRETS_KEY", default="")
# Our public address, for the callback URLs handed to carriers (/carriers/{name}/receipts and /inbound).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# An HTTP receipt whose carrier id is not stored yet is answered 503 (Retry-After: 5) for this long from the
# first time that id was seen, so the carrier sends it again; then 204 and a logged give-up.
CARRIER_RECEIPT_WAIT_SECONDS = env.float("CARRIER_RECEIPT_WAIT_SECONDS", default=600.0)
# How long a process keeps the carriers and routes it read: a change in admin or by carriers_load is in
# use everywhere within this many seconds, at once in the process that made it.
ROUTING_CACHE_SECONDS = env.float("ROUTING_CACHE_SECONDS", default=15.0)

# Least-cost routing (messaging/routing/lcr.py): `balanced` takes the cheapest route at or above this delivery
# rate whose p50 receipt latency is within the limit; a window needs this many finished messages to rate a
# route. A route's circuit opens after this many consecutive route-level failures and half-opens after the
# cool-down.
ROUTING_MIN_DELIVERY_RATE = env.float("ROUTING_MIN_DELIVERY_RATE", default=0.90)
ROUTING_MAX_LATENCY_MS = env.int("ROUTING_MAX_LATENCY_MS", default=30_000)
ROUTING_MIN_SAMPLE = env.int("ROUTING_MIN_SAMPLE", default=20)
ROUTING_CIRCUIT_FAILURES = env.int("ROUTING_CIRCUIT_FAILURES", default=5)
ROUTING_CIRCUIT_COOLDOWN_SECONDS = env.float("ROUTING_CIRCUIT_COOLDOWN_SECONDS", default=30.0)
# A half-open route is tried first by one message in this many (per process); the others go to it last.
ROUTING_CIRCUIT_TRIAL_EVERY = env.int("ROUTING_CIRCUIT_TRIAL_EVERY", default=10)
# A route that failed a message at route level is not tried again for it within this window (failover).
# A 15-minute delivery rate this far below the route's 24-hour rate opens its circuit (routing/quality.py).
ROUTING_COLLAPSE_DROP = env.float("ROUTING_COLLAPSE_DROP", default=0.30)
ROUTING_FAILOVER_WINDOW_SECONDS = env.float("ROUTING_FAILOVER_WINDOW_SECONDS", default=60.0)


def exchange_rates_parse(text: str) -> dict[str, Decimal]:
    """ROUTING_EXCHANGE_RATES: JSON (`{"USD": "0.92"}`) or `USD=0.92,GBP=1.17`; each rate is what one unit of
    that currency is worth in ROUTING_COST_CURRENCY. A malformed value fails at start."""
    text = text.strip()
    try:
        pairs = json.loads(text).items() if text.startswith("{") else (
            part.split("=", 1) for part in text.split(",") if part.strip())
        rates = {str(code).strip().upper(): Decimal(str(rate).strip()) for code, rate in pairs}
    except (ValueError, InvalidOperation, AttributeError) as exc:
        raise ValueError(f"ROUTING_EXCHANGE_RATES is not JSON or CODE=RATE,...: {text!r}") from exc
    if any(len(code) != 3 or not code.isalpha() or not rate.is_finite() or rate <= 0 for code, rate in rates.items()):
        raise ValueError(f"ROUTING_EXCHANGE_RATES needs 3-letter codes and positive rates: {text!r}")
    return rates


# `cheapest` and `balanced` compare route costs in this currency: a route's cost times its currency's rate.
# A route in a currency with no rate is ranked after every route that has one (and a warning logged).
ROUTING_COST_CURRENCY = env.str("ROUTING_COST_CURRENCY", default="EUR").upper()
ROUTING_EXCHANGE_RATES = exchange_rates_parse(env.str("ROUTING_EXCHANGE_RATES", default=""))
# The mobile operator of a destination, for routes that name one (messaging/routing/operators.py): the dotted
# path of a function e164 -> "MCC-MNC" (or ""). Empty: no lookup, so operator-specific routes are not used.
# Its answers are cached this long.
ROUTING_OPERATOR_LOOKUP = env.str("ROUTING_OPERATOR_LOOKUP", default="")
ROUTING_OPERATOR_CACHE_SECONDS = env.int("ROUTING_OPERATOR_CACHE_SECONDS", default=86_400)

# The SMPP connector process (messaging/connector/, `manage.py connector`): it reports each carrier's session
# state and its own lease every CONNECTOR_HEARTBEAT_SECONDS; dispatch hands a carrier attempts only while a
# report of `bound` is younger than CONNECTOR_LEASE_SECONDS, and a connector silent that long has died: the
# sweeper settles its claims. An attempt no connector claimed within CONNECTOR_PICKUP_SECONDS fails over.
# Its journal (what went on the wire, what the SMSC answered) lives in CONNECTOR_JOURNAL_DIR on local disk.
CONNECTOR_HEARTBEAT_SECONDS = env.float("CONNECTOR_HEARTBEAT_SECONDS", default=5.0)
CONNECTOR_LEASE_SECONDS = env.float("CONNECTOR_LEASE_SECONDS", default=30.0)
CONNECTOR_PICKUP_SECONDS = env.float("CONNECTOR_PICKUP_SECONDS", default=30.0)
# Default: the host name. Two connector processes on one host need two names (`manage.py connector --name`).
CONNECTOR_NAME = env.str("CONNECTOR_NAME", default="")
CONNECTOR_JOURNAL_DIR = env.str("CONNECTOR_JOURNAL_DIR", default=str(VAR_DIR / "connector"))
# make run's local carriers on loopback (`manage.py local_carriers`, messaging/carriers/local/): the SMSC's SMPP
# port and the HTTP carrier's; seed_demo's carriers local-smpp and local-http (LIVE_CARRIER=routes) point at them.
LOCAL_SMPP_PORT = env.int("LOCAL_SMPP_PORT", default=2775)
LOCAL_HTTP_CARRIER_PORT = env.int("LOCAL_HTTP_CARRIER_PORT", default=9401)

# --- Email --------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="smsportal <no-reply@smsportal.localhost>")

# --- Auth and sessions ------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "portal:login"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="smsportal")
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# The admin lists people's devices but never shows a TOTP seed, its QR code or backup codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# How long a failed sign-in streak locks an email + address pair, and after how many tries.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)

# --- Security headers (production) ---------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Health checks come from the load balancer over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if TRUSTED_PROXIES:
        # Only behind a proxy we trust do we believe its scheme header, and only from it: ClientIpMiddleware
        # drops X-Forwarded-Proto from any other peer (smsportal/gunicorn_conf.py keeps the servers from believing it).
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- i18n / time ------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise) ----------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- REST framework -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["smsportal.api.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "smsportal.api.pagination.CursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["smsportal.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env.str("API_RATE_LIMIT", default="100/s")},
    "EXCEPTION_HANDLER": "smsportal.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "smsportal.api.schema.ApiAutoSchema",
    "UNAUTHENTICATED_USER": None,
    "PAGE_SIZE": 50,
}
# Request bodies larger than this get 413 `request_too_large` before they are read (smsportal/bodylimit.py):
# /v1 (a batch of 1,000 messages fits), and the portal and admin (the number import takes 5 MB files).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=2 * 1024 * 1024)
PORTAL_MAX_BODY_BYTES = env.int("PORTAL_MAX_BODY_BYTES", default=8 * 1024 * 1024)
# Django's own cap on form data in memory (a 400) is set to never fire before the 413 above.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, PORTAL_MAX_BODY_BYTES)
# Idempotency-Key on POST /v1 (smsportal/api/idempotency.py): answers are kept this long, and a
# claim not completed within the recovery window counts as abandoned (its process died).
IDEMPOTENCY_TTL_HOURS = env.int("IDEMPOTENCY_TTL_HOURS", default=24)
IDEMPOTENCY_RECOVERY_SECONDS = env.int("IDEMPOTENCY_RECOVERY_SECONDS", default=60)
SPECTACULAR_SETTINGS = {
    "TITLE": "smsportal API",
    "DESCRIPTION": "Send SMS, lease numbers and manage your account. Authenticate with `Authorization: Bearer sk_...`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status`; each set of choices gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "MessageStatusEnum": "messaging.models.Status",
        "WebhookDeliveryStatusEnum": "smsportal.events.models.DeliveryStatus",
        "ConsentStatusEnum": "compliance.models.ConsentRecord.Status",
    },
}

# --- Logging: structured enough to grep, never a secret -----------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "smsportal.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Compliance ------------------------------------------------------------------------
# Seconds a process keeps fraud rules, allowances and quiet-hours settings in memory (a change made in this
# process clears them at once: compliance/signals.py). The accept pipeline's checks then ask the database nothing.
COMPLIANCE_CACHE_SECONDS = env.float("COMPLIANCE_CACHE_SECONDS", default=30.0)
# A fraud rule's baseline: the EWMA of its subject's earlier windows, this weight on the newest.
FRAUD_EWMA_ALPHA = env.float("FRAUD_EWMA_ALPHA", default=0.1)
# The same OTP text to the same number from the same tenant within this many seconds is answered with the
# first message (`deduplicated: true`), not sent again. 0 turns the dedupe off.
OTP_DEDUPE_SECONDS = env.float("OTP_DEDUPE_SECONDS", default=30.0)
# OTP messages to one recipient number, per tenant (429 with Retry-After beyond it). Empty: no such limit.
MESSAGE_OTP_DESTINATION_RATE_LIMIT = env.str("MESSAGE_OTP_DESTINATION_RATE_LIMIT", default="5/h")
# The consent check's per-tenant "has no consent records or suppressions" answer is kept this long in a process
# (a write in the process clears it at once); only the first record of a tenant is affected: one with records
# is asked every send. compliance/consent.py.
CONSENT_EMPTY_CACHE_SECONDS = env.float("CONSENT_EMPTY_CACHE_SECONDS", default=2.0)
# Key of the keyed hash (HMAC-SHA256) kept of every number in the consent ledger and suppressions, so an
# opt-out survives an erasure request. Empty: derived from SECRET_KEY (changing it forgets every erased opt-out).
CONSENT_HASH_KEY = env.str("CONSENT_HASH_KEY", default="")
# Message bodies (sent and inbound) older than a tenant's retention days (this by default) are redacted by beat.
RETENTION_DEFAULT_DAYS = env.int("RETENTION_DEFAULT_DAYS", default=90)

# --- Sender IDs (compliance/sender_ids.py) ------------------------------------------------------------------
# Uploaded files (sender-ID documents) live under MEDIA_ROOT. No URL serves them: they are tenants' papers, for
# account managers, not public.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
# The largest sender-ID document (a letter of authorization, an extract) in bytes: under API_MAX_BODY_BYTES.
SENDER_ID_DOCUMENT_MAX_BYTES = env.int("SENDER_ID_DOCUMENT_MAX_BYTES", default=1_500_000)
