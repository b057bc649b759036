"""Idempotency-Key on POST /v1 (smsportal/api/idempotency.py): RELIABILITY.md IDEM-1..5, plus claims and purge.

The side effects counted are real ones: POST /v1/ip-allowlist adds an entry (and an audit event)
per call, POST /v1/api-keys a key; without idempotency 50 calls would make 50 rows.
"""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import ApiKey, AuditEvent, IdempotencyRecord, IpAllowlistEntry
from accounts.tasks import idempotency_records_purge_task
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, make_api_key
from accounts.tests.idempotency_urls import FlakyAllowlistView
from smsportal.api.idempotency import idempotency_records_purge, request_fingerprint
from smsportal.celery import app as celery_app

pytestmark = pytest.mark.django_db

ALLOWLIST = "/v1/ip-allowlist"
KEYS = "/v1/api-keys"
# 127.0.0.0/8 admits the test client, so entries made by the tests never lock the tenant out.
BODY = {"cidr": "127.0.0.0/8", "note": "office"}
KEY = "8e0f6a3c-3f55-4d2b-9d5e-0b7c9a1f2e44"


def _post(api, url, body, auth, key=KEY, **extra):
    return api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key, **auth, **extra)


def _entries(side) -> int:
    return IpAllowlistEntry.unscoped.filter(tenant=side.tenant).count()


def _replayed(response) -> bool:
    return response.headers.get("Idempotent-Replayed") == "true"


def _record(side, key=KEY, mode="test") -> IdempotencyRecord:
    return IdempotencyRecord.unscoped.get(tenant=side.tenant, mode=mode, key=key)


def _claim(side, *, locked_at, body=BODY, key=KEY) -> IdempotencyRecord:
    """An in-progress claim on BODY to /v1/ip-allowlist, as a request still running (or dead) leaves it."""
    fingerprint = request_fingerprint(method="POST", route="v1/ip-allowlist", kwargs={}, query={}, body=body)
    return IdempotencyRecord.unscoped.create(tenant=side.tenant, mode="test", key=key, fingerprint=fingerprint,
                                             locked_at=locked_at, created_at=locked_at)


def _database_text() -> str:
    """Every value of every table, as text (bytes decoded), to search for what must never be at rest."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (names from the schema)
            for row in cursor.fetchall():
                for value in row:
                    raw = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
                    chunks.append(raw.decode("utf-8", "replace"))
    return "\n".join(chunks)


# --- IDEM-1: retries replay, byte for byte, with one side effect --------------------------------


def test_it_answers_50_retries_with_one_entry_and_the_same_bytes(world, api):
    # given tenant A's entry count and audit trail
    a = world.a
    entries, audits = _entries(a), AuditEvent.unscoped.filter(tenant=a.tenant, action="ip_allowlist.added").count()
    # when the same POST with the same key is sent 50 times
    responses = [_post(api, ALLOWLIST, BODY, a.auth) for _ in range(50)]
    # then exactly one entry and one audit event were made
    assert _entries(a) == entries + 1
    assert AuditEvent.unscoped.filter(tenant=a.tenant, action="ip_allowlist.added").count() == audits + 1
    # and all 50 answers have the first one's status and exact bytes; only 2..50 say they are replays
    first = responses[0]
    assert first.status_code == 201 and not _replayed(first)
    assert {r.status_code for r in responses} == {201}
    assert {r.content for r in responses} == {first.content}
    assert all(_replayed(r) for r in responses[1:])
    assert all(r["Content-Type"] == first["Content-Type"] == "application/json" for r in responses)
    assert IpAllowlistEntry.unscoped.get(public_id=first.json()["id"]).tenant == a.tenant


def test_it_creates_one_api_key_for_50_retries_and_shows_the_secret_once(world, api):
    # given A's key count
    a = world.a
    keys = ApiKey.unscoped.filter(tenant=a.tenant).count()
    # when A creates a key 50 times with one Idempotency-Key
    responses = [_post(api, KEYS, {"name": "deploys", "scopes": ["messages:send"]}, a.auth) for _ in range(50)]
    # then one key exists, and the first answer alone carries its secret
    assert ApiKey.unscoped.filter(tenant=a.tenant).count() == keys + 1
    first = responses[0].json()
    secret = first["secret"]
    assert responses[0].status_code == 201 and secret.startswith("sk_test_")
    # and every replay is the same bytes: the first answer with "secret": null
    replays = responses[1:]
    assert {r.status_code for r in replays} == {201} and all(_replayed(r) for r in replays)
    assert len({r.content for r in replays}) == 1
    assert replays[0].json() == {**first, "secret": None}
    assert all(secret not in r.content.decode() for r in replays)
    # and the secret is nowhere at rest: not in the idempotency record, not in any table
    record = _record(a)
    assert secret.encode() not in bytes(record.response_body) and b'"secret":null' in bytes(record.response_body)
    everything = _database_text()
    assert secret not in everything and secret.split("_")[3][:20] not in everything


def test_it_stores_and_replays_a_validation_error(world, api):
    # given a POST that fails validation, with a key
    a = world.a
    first = _post(api, ALLOWLIST, {"cidr": "10.0.0.300/8"}, a.auth)
    assert_error(first, 400, "invalid_cidr", field="cidr")
    # when it is retried
    again = _post(api, ALLOWLIST, {"cidr": "10.0.0.300/8"}, a.auth)
    # then the stored 400 comes back (the answer to a key is fixed once given), and nothing was created
    assert again.status_code == 400 and again.content == first.content and _replayed(again)
    assert _record(a).response_status == 400


# --- IDEM-2: the same key for another request ---------------------------------------------------


def test_it_refuses_the_key_with_another_body_or_on_another_route(world, api):
    # given a first POST with the key
    a = world.a
    first = _post(api, ALLOWLIST, BODY, a.auth)
    assert first.status_code == 201
    entries, keys, audits = _entries(a), ApiKey.unscoped.count(), AuditEvent.unscoped.count()
    record = _record(a)
    # when the key comes back with another note, another CIDR, and on another route with the same body
    other_note = _post(api, ALLOWLIST, {**BODY, "note": "home"}, a.auth)
    other_cidr = _post(api, ALLOWLIST, {**BODY, "cidr": "127.0.0.1/32"}, a.auth)
    other_route = _post(api, KEYS, BODY, a.auth)
    # then each is 422 idempotency_key_reused without a field, and nothing was written anywhere
    for response in (other_note, other_cidr, other_route):
        assert_error(response, 422, "idempotency_key_reused")
        assert not _replayed(response)
    assert (_entries(a), ApiKey.unscoped.count(), AuditEvent.unscoped.count()) == (entries, keys, audits)
    # and the original record still replays the original answer
    assert _record(a).fingerprint == record.fingerprint
    assert _post(api, ALLOWLIST, BODY, a.auth).content == first.content


def test_it_treats_key_order_and_spacing_of_the_body_as_the_same_request(world, api):
    # given a first POST
    first = _post(api, ALLOWLIST, {"cidr": "127.0.0.0/8", "note": "x"}, world.a.auth)
    # when the retry sends the same JSON with other key order and whitespace
    raw = '{ "note" : "x",\n "cidr": "127.0.0.0/8" }'
    again = api.post(ALLOWLIST, raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY=KEY, **world.a.auth)
    # then it is a replay, not a 422
    assert again.status_code == 201 and _replayed(again) and again.content == first.content


# --- IDEM-4: scopes ------------------------------------------------------------------------------


def test_it_keeps_two_tenants_using_one_key_apart(world, api):
    # given tenants A and B, each with its entry count
    a, b = world.a, world.b
    before = (_entries(a), _entries(b))
    # when both send the same key with the same body
    from_a = _post(api, ALLOWLIST, BODY, a.auth)
    from_b = _post(api, ALLOWLIST, BODY, b.auth)
    # then each gets its own new entry: no replay of the other's answer
    assert (from_a.status_code, from_b.status_code) == (201, 201) and not _replayed(from_b)
    assert (_entries(a), _entries(b)) == (before[0] + 1, before[1] + 1)
    a_id, b_id = from_a.json()["id"], from_b.json()["id"]
    assert a_id != b_id and a_id not in from_b.content.decode() and b_id not in from_a.content.decode()
    assert IpAllowlistEntry.unscoped.get(public_id=b_id).tenant == b.tenant
    # and each tenant's retry replays its own answer
    assert _post(api, ALLOWLIST, BODY, b.auth).content == from_b.content
    assert _post(api, ALLOWLIST, BODY, a.auth).content == from_a.content


def test_it_keeps_live_and_test_keys_of_one_tenant_apart(world, api):
    # given tenant A's test admin key and a live admin key
    a = world.a
    _, live_secret = make_api_key(a.tenant, mode="live", name="live admin")
    keys = ApiKey.unscoped.filter(tenant=a.tenant).count()
    # when both create a key with the same Idempotency-Key and body
    body = {"name": "worker", "mode": "test"}
    in_test = _post(api, KEYS, body, a.auth)
    in_live = _post(api, KEYS, body, bearer(live_secret))
    # then two keys exist and neither answer is a replay of the other
    assert (in_test.status_code, in_live.status_code) == (201, 201) and not _replayed(in_live)
    assert in_test.json()["id"] != in_live.json()["id"]
    assert ApiKey.unscoped.filter(tenant=a.tenant).count() == keys + 2
    assert {r.mode for r in IdempotencyRecord.unscoped.filter(tenant=a.tenant, key=KEY)} == {"test", "live"}


def test_it_replays_to_another_key_of_the_tenant_after_rotation(world, api):
    # given a POST made with A's admin key (KEY-4)
    a = world.a
    first = _post(api, ALLOWLIST, BODY, a.auth)
    # when the key is rotated: a new test key, the old one revoked, and the client retries with the new one
    _, new_secret = make_api_key(a.tenant, name="rotated admin")
    assert api.delete(f"{KEYS}/{a.api_key.public_id}", **bearer(new_secret)).status_code == 200
    again = _post(api, ALLOWLIST, BODY, bearer(new_secret))
    # then the original answer is replayed: the scope is the tenant, not the API key
    assert again.status_code == 201 and _replayed(again) and again.content == first.content


# --- IDEM-5: key format and retention ----------------------------------------------------------


@pytest.mark.parametrize("key", [
    "k" * 256, "", "tab\there", "new\nline", "nul\x00", "del\x7f", "caf\xe9",
], ids=["256-chars", "empty", "tab", "newline", "nul", "del", "non-ascii"])
def test_it_refuses_a_malformed_key(world, api, key):
    # given A's entry count; when a POST carries a malformed key
    entries = _entries(world.a)
    response = _post(api, ALLOWLIST, BODY, world.a.auth, key=key)
    # then 400 invalid_idempotency_key, no field, and nothing was created or recorded
    assert_error(response, 400, "invalid_idempotency_key")
    assert _entries(world.a) == entries and not IdempotencyRecord.unscoped.exists()


@pytest.mark.parametrize("key", ["k" * 255, "x", "order 42 / retry ~!@#$%^&*()"], ids=["255-chars", "1-char", "spaces"])
def test_it_accepts_any_printable_ascii_key_up_to_255(world, api, key):
    assert _post(api, ALLOWLIST, BODY, world.a.auth, key=key).status_code == 201
    assert _replayed(_post(api, ALLOWLIST, BODY, world.a.auth, key=key))


def test_it_replays_for_24_hours_and_after_the_purge_runs_afresh(world, api, time_machine):
    # given a POST at noon
    a = world.a
    noon = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    time_machine.move_to(noon, tick=False)
    first = _post(api, ALLOWLIST, BODY, a.auth)
    entries = _entries(a)
    # when it is retried 23 h 59 min later (after an hourly purge)
    time_machine.move_to(noon + timedelta(hours=23, minutes=59), tick=False)
    assert idempotency_records_purge_task() == 0
    late = _post(api, ALLOWLIST, BODY, a.auth)
    # then it is still a replay
    assert late.status_code == 201 and _replayed(late) and late.content == first.content and _entries(a) == entries
    # when the purge runs once the day is over
    time_machine.move_to(noon + timedelta(hours=25), tick=False)
    assert idempotency_records_purge_task() == 1
    # then the key is free: the same request runs again as new
    anew = _post(api, ALLOWLIST, BODY, a.auth)
    assert anew.status_code == 201 and not _replayed(anew) and anew.json()["id"] != first.json()["id"]
    assert _entries(a) == entries + 1


# --- claims: concurrent holders, crashed holders, failures -------------------------------------------


def test_it_answers_409_while_the_first_request_still_runs(world, api):
    # given a claim on the key made a moment ago by a request still running
    a = world.a
    _claim(a, locked_at=timezone.now() - timedelta(seconds=5))
    entries = _entries(a)
    # when the retry arrives
    response = _post(api, ALLOWLIST, BODY, a.auth)
    # then 409 idempotency_key_in_use with Retry-After: 1, and it did not run
    assert_error(response, 409, "idempotency_key_in_use")
    assert response["Retry-After"] == "1" and _entries(a) == entries
    assert _record(a).state == "in_progress"


def test_it_checks_the_body_before_saying_the_key_is_in_use(world, api):
    # given a running claim; when another body comes with the key; then 422, not 409
    _claim(world.a, locked_at=timezone.now())
    assert_error(_post(api, ALLOWLIST, {**BODY, "note": "other"}, world.a.auth), 422, "idempotency_key_reused")


def test_it_takes_over_a_claim_abandoned_past_the_recovery_window(world, api, settings):
    # given a claim whose request died 61 s ago (recovery window 60 s)
    a = world.a
    settings.IDEMPOTENCY_RECOVERY_SECONDS = 60
    stale = _claim(a, locked_at=timezone.now() - timedelta(seconds=61))
    entries = _entries(a)
    # when the client retries
    response = _post(api, ALLOWLIST, BODY, a.auth)
    # then this request takes the claim over, runs once and stores its answer on the same record
    assert response.status_code == 201 and not _replayed(response)
    assert _entries(a) == entries + 1
    record = _record(a)
    assert record.pk == stale.pk and record.state == "completed" and record.locked_at > stale.locked_at
    assert _post(api, ALLOWLIST, BODY, a.auth).content == response.content


@pytest.mark.urls("accounts.tests.idempotency_urls")
def test_it_undoes_the_work_of_a_request_whose_claim_was_taken_over(world, api):
    # given a view whose claim is taken over by another worker while it runs
    a = world.a
    entries = _entries(a)
    # when it finishes
    response = _post(api, "/v1/test/taken-over", BODY, a.auth)
    # then it may not store its answer: 409, and its entry was rolled back
    assert_error(response, 409, "idempotency_key_in_use")
    assert response["Retry-After"] == "1" and _entries(a) == entries


@pytest.mark.urls("accounts.tests.idempotency_urls")
@pytest.mark.parametrize("failure, status", [("raise", 500), ("503", 503)])
def test_it_rolls_back_a_5xx_and_releases_the_key(world, api, monkeypatch, failure, status):
    # given a view that adds an entry and then fails
    a = world.a
    monkeypatch.setattr(FlakyAllowlistView, "failure", failure)
    entries, audits = _entries(a), AuditEvent.unscoped.count()
    # when it is called with a key
    failed = _post(api, "/v1/test/flaky-allowlist", BODY, a.auth)
    # then the 5xx left no entry, no audit event and no record: a rolled-back 500 is not cached
    assert failed.status_code == status
    assert (_entries(a), AuditEvent.unscoped.count()) == (entries, audits)
    assert not IdempotencyRecord.unscoped.exists()
    # when the cause is gone and the client retries with the same key
    monkeypatch.setattr(FlakyAllowlistView, "failure", None)
    retried = _post(api, "/v1/test/flaky-allowlist", BODY, a.auth)
    # then it runs afresh and succeeds, exactly one entry exists, and further retries replay it
    assert retried.status_code == 201 and not _replayed(retried)
    assert _entries(a) == entries + 1
    assert _post(api, "/v1/test/flaky-allowlist", BODY, a.auth).content == retried.content


# --- where the key does nothing ------------------------------------------------------------------


def test_it_processes_a_post_without_the_header_every_time(world, api):
    entries = _entries(world.a)
    for _ in range(2):
        assert api.post(ALLOWLIST, BODY, format="json", **world.a.auth).status_code == 201
    assert _entries(world.a) == entries + 2 and not IdempotencyRecord.unscoped.exists()


def test_it_ignores_the_header_on_get_and_delete(world, api):
    # given a key on a GET and a DELETE; then they answer as usual and record nothing
    entry = world.a.allowlist_entry
    assert api.get(ALLOWLIST, HTTP_IDEMPOTENCY_KEY=KEY, **world.a.auth).status_code == 200
    response = api.delete(f"{ALLOWLIST}/{entry.public_id}", HTTP_IDEMPOTENCY_KEY=KEY, **world.a.auth)
    assert response.status_code == 204 and not IdempotencyRecord.unscoped.exists()


def test_it_records_nothing_for_refused_or_unparseable_requests(world, api):
    # given a key on a request with a bad API key, a key without the scope, and a body that is not JSON
    viewer_secret = make_api_key(world.a.tenant, name="reader", scopes=["messages:read"])[1]
    bad_key = _post(api, ALLOWLIST, BODY, bearer("sk_test_nope"))
    no_scope = _post(api, ALLOWLIST, BODY, bearer(viewer_secret))
    not_json = api.post(ALLOWLIST, "{cidr: ", content_type="application/json", HTTP_IDEMPOTENCY_KEY=KEY,
                        **world.a.auth)
    # then each gets its usual error and no record holds the key: the endpoint never started
    assert_error(bad_key, 401, "invalid_api_key")
    assert_error(no_scope, 403, "insufficient_scope")
    assert_error(not_json, 400, "invalid_json")
    assert not IdempotencyRecord.unscoped.exists()
    # and the same key then works for a proper request
    assert _post(api, ALLOWLIST, BODY, world.a.auth).status_code == 201


# --- purge ---------------------------------------------------------------------------------------


def test_it_purges_old_records_in_bounded_batches(world):
    # given five records two days old, one fresh, and one old one still claimed by a live request
    a, now = world.a, timezone.now()
    old = now - timedelta(days=2)
    for n in range(5):
        _claim(a, locked_at=old, key=f"old-{n}")
    _claim(a, locked_at=now, key="fresh")
    IdempotencyRecord.unscoped.create(tenant=a.tenant, mode="test", key="old-but-running", fingerprint="f" * 64,
                                      locked_at=now, created_at=old)
    # when a purge of at most two batches of two runs, then another
    first = idempotency_records_purge(batch_size=2, max_batches=2)
    second = idempotency_records_purge(batch_size=2, max_batches=2)
    # then the first deletes four, the second the fifth, and the young and the running ones stay
    assert (first, second) == (4, 1)
    assert set(IdempotencyRecord.unscoped.values_list("key", flat=True)) == {"fresh", "old-but-running"}


def test_it_schedules_the_purge_hourly_with_beat():
    # the data migration made the periodic task, and its task name is a registered Celery task
    task = PeriodicTask.objects.get(task="accounts.tasks.idempotency_records_purge_task")
    assert task.enabled and task.interval.every == 1 and task.interval.period == "hours"
    assert task.task in celery_app.tasks


# --- IDEM-3: real concurrency (PostgreSQL) ------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_runs_once_when_ten_threads_race_with_one_key(world):
    """10 threads behind a barrier, 5 rounds: per round one entry; every answer the 201 or a 409."""
    a = world.a
    threads_per_round, rounds = 10, 5
    for round_no in range(rounds):
        key, body = f"race-{round_no}", json.dumps({"cidr": "127.0.0.0/8", "note": f"round {round_no}"})
        barrier, answers = threading.Barrier(threads_per_round), []
        entries = _entries(a)

        def send(key=key, body=body, barrier=barrier, answers=answers):
            try:
                client = Client()
                barrier.wait(timeout=30)
                answers.append(client.post(ALLOWLIST, body, content_type="application/json",
                                           HTTP_IDEMPOTENCY_KEY=key, **a.auth))
            finally:
                connections.close_all()  # this thread's own connection

        threads = [threading.Thread(target=send) for _ in range(threads_per_round)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(answers) == threads_per_round
        statuses = [r.status_code for r in answers]
        assert set(statuses) <= {201, 409}, statuses
        created = [r for r in answers if r.status_code == 201]
        assert created and len({r.json()["id"] for r in created}) == 1, [r.content for r in created]
        assert sum(not _replayed(r) for r in created) == 1  # one ran; the other 201s are replays
        assert len({r.content for r in created}) == 1
        assert all(r["Retry-After"] == "1" for r in answers if r.status_code == 409)
        assert _entries(a) == entries + 1, f"round {round_no}"
