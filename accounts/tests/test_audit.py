"""The audit trail is append-only: the model refuses updates and deletes, and on PostgreSQL so does the database."""
from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from accounts import services
from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(world) -> AuditEvent:
    return services.audit_record(action="test.recorded", actor=services.Actor(user=world.a.owner, ip="192.0.2.1"),
                                 tenant=world.a.tenant, target=world.a.tenant, changes={"n": 1})


def test_it_records_who_did_what_to_which_object(event, world):
    stored = AuditEvent.unscoped.get(pk=event.pk)

    assert (stored.action, stored.tenant, stored.actor, stored.actor_label) == (
        "test.recorded", world.a.tenant, world.a.owner, world.a.owner.email)
    assert (stored.target_type, stored.target_id, stored.ip_address) == ("Tenant", "alpha", "192.0.2.1")
    assert stored.public_id.startswith("evt_")


def test_it_refuses_to_save_an_existing_event(event):
    event.action = "test.rewritten"

    with pytest.raises(ValueError, match="append-only"):
        event.save()

    assert AuditEvent.unscoped.get(pk=event.pk).action == "test.recorded"


def test_it_refuses_to_delete_an_event(event):
    with pytest.raises(ValueError, match="append-only"):
        event.delete()

    assert AuditEvent.unscoped.filter(pk=event.pk).exists()


@pytest.mark.postgres
@pytest.mark.parametrize("statement", [
    "UPDATE accounts_auditevent SET action = 'test.rewritten' WHERE id = %s",
    "DELETE FROM accounts_auditevent WHERE id = %s",
])
def test_it_refuses_raw_sql_updates_and_deletes_on_postgresql(event, statement):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [event.pk])

    assert AuditEvent.unscoped.get(pk=event.pk).action == "test.recorded"


@pytest.mark.postgres
def test_it_refuses_queryset_updates_and_deletes_on_postgresql(event):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.unscoped.filter(pk=event.pk).update(action="test.rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.unscoped.filter(pk=event.pk).delete()

    assert AuditEvent.unscoped.get(pk=event.pk).action == "test.recorded"
