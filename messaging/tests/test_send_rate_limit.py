"""POST /v1/messages is limited per tenant (Tenant.messages_per_second), across all its keys."""
import pytest
import time_machine

from accounts.models import Tenant
from accounts.tests.factories import make_api_key
from messaging.models import Message

pytestmark = pytest.mark.django_db

BODY = {"to": "+14155550123", "from": "Acme", "text": "hello"}


def test_it_answers_429_with_retry_after_past_the_tenant_rate_and_stores_nothing_more(world, api):
    # given tenant A allows 3 sends per second, and two of its keys
    Tenant.objects.filter(pk=world.a.tenant.pk).update(messages_per_second=3)
    _key, other_secret = make_api_key(world.a.tenant, scopes=["messages:send"], name="second")
    before = Message.unscoped.filter(tenant=world.a.tenant).count()
    with time_machine.travel("2026-11-25 12:00:00", tick=False):
        # when five sends arrive in the same second, split across the keys
        statuses = [api.post("/v1/messages", BODY, format="json", **world.a.auth).status_code for _ in range(3)]
        limited = api.post("/v1/messages", BODY, format="json", HTTP_AUTHORIZATION=f"Bearer {other_secret}")
        # then the first three are accepted and the rest refused, whichever key they use
        assert statuses == [202, 202, 202]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited["Retry-After"]) >= 1
        # and tenant B is not affected by A's bucket
        assert api.post("/v1/messages", BODY, format="json", **world.b.auth).status_code == 202
    assert Message.unscoped.filter(tenant=world.a.tenant).count() == before + 3
