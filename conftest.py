"""Project-wide test fixtures: the loopback-only network guard and the two-tenant world."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest


def pytest_configure(config):
    # No test reaches the internet: every TCP/UDP connect must go to loopback.
    from smsportal.tests import netguard

    netguard.install()


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from accounts.services.api_keys import api_key_touches_forget
    from accounts.services.key_cache import key_cache_clear
    from compliance.countries import country_rules_cache_clear
    from smsportal.api.ratelimit import local_buckets_clear
    from smsportal.events.selectors import endpoints_cache_clear

    cache.clear()
    key_cache_clear()
    api_key_touches_forget()
    endpoints_cache_clear()
    country_rules_cache_clear()
    # Without REDIS_URL the rate limits live in this process; on SQLite a rolled-back test's ids come
    # back, so the next test's key would find the last one's bucket.
    local_buckets_clear()
    # Compliance's process caches (fraud rules, quiet-hours settings) and its in-process velocity counters.
    from compliance import fraud, quiet_hours

    fraud.rules_cache_clear()
    fraud.local_state_clear()
    quiet_hours.settings_cache_clear()
    from compliance import consent

    consent.consent_cache_clear()
    # Sender IDs: the tenants' approved IDs and fallback pools, and the platform's shared senders.
    from compliance.sender_ids import sender_ids_cache_clear
    from messaging.accept.policies.senders import shared_senders_cache_clear

    sender_ids_cache_clear()
    shared_senders_cache_clear()
    yield
    sender_ids_cache_clear()
    shared_senders_cache_clear()


@pytest.fixture
def world(db):
    """Two tenants: A with an owner, a member of each other role and an admin key; B (the outsider) likewise."""
    from accounts.tests.factories import World

    return World.build()


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    return APIClient()


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.postgres` tests (row locks, triggers) run only when the test database is PostgreSQL."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _empty_test_broker_folder():
    """Tasks enqueued by tests pile up in the embedded test broker's folder; start each run empty."""
    from django.conf import settings

    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
    if folder and "test-broker" in folder:
        import pathlib

        for path in pathlib.Path(folder).glob("*.msg"):
            path.unlink(missing_ok=True)
    yield


@pytest.fixture(scope="session", autouse=True)
def _other_test_database_sessions_ended(django_db_setup, django_db_blocker):
    """Before pytest-django drops the PostgreSQL test database (refused while any other session is
    open), end the sessions other processes and threads left on it: the live server's keep-alive
    request threads, a server process a test started. Set up after django_db_setup, so torn down before it."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture(autouse=True)
def _platform_rules_after_flush(request):
    """A transactional test's database was flushed by the one before: the platform's rules that migrations
    load (country rules, content rules: compliance 0003 and 0007) are put back when missing, so the send
    pipeline's checks (geo permissions' low-risk defaults, the content policy) behave as in production."""
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction")) or any(
        name in request.fixturenames for name in ("transactional_db", "live_server"))
    if transactional:
        request.getfixturevalue("transactional_db")
        from compliance import content, countries
        from compliance.country_data import country_rules_load
        from compliance.models import CountryRule

        if not CountryRule.objects.exists():
            country_rules_load()
            countries.country_rules_cache_clear()
        if content.content_rules_seed():
            content.content_cache_clear()
    yield


@pytest.fixture
def us_daytime(time_machine):
    """The next 19:00 UTC, ticking: daytime in every US zone, so marketing to US numbers is not deferred by
    quiet hours (the TCPA preset, 8:00-21:00 local). For tests of queues and lists that send marketing to +1.
    Forward, never back: rate-limit buckets other tests left in Redis would otherwise lie in the future."""
    now = datetime.now(UTC)
    evening = now.replace(hour=19, minute=0, second=0, microsecond=0)
    time_machine.move_to(evening if evening > now else evening + timedelta(days=1), tick=True)
