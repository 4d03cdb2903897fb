"""The audit log: one event per write in the write's transaction, secrets hashed, chain verified."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection

from config_registry import audit
from config_registry.models import AuditEvent, Layer, LayerVersion
from config_registry.selectors import registry_revision
from config_registry.services import config_reveal, key_definition_save, token_create, token_revoke, version_publish


def test_version_publish__audit_event__before_after_for_plain_keys_hash_for_secrets(make_layer, actor):
    layer = make_layer("global", {"a": 1, "db.password": "hunter2-old"}, secrets=["db.password"])
    version_publish(
        layer=layer, base_version=1, set_={"a": 2, "db.password": "hunter2-new"}, actor=actor, comment="rotate"
    )
    event = AuditEvent.objects.order_by("seq").last()
    assert (event.action, event.target, event.actor, event.source) == (
        "version.publish",
        "global",
        "admin:tester",
        "127.0.0.1",
    )
    keys = event.changes["keys"]
    assert keys["a"] == {"kind": "changed", "secret": False, "before": 1, "after": 2}
    assert keys["db.password"]["secret"] is True
    assert keys["db.password"]["before_hmac"] != keys["db.password"]["after_hmac"]
    assert "hunter2" not in json.dumps(event.changes)
    assert event.changes["comment"] == "rotate" and event.changes["version"] == 2


def test_writes__each__record_exactly_one_event(make_layer, actor, make_user):
    counts = []
    layer = make_layer("global")
    counts.append(AuditEvent.objects.count())
    version_publish(layer=layer, base_version=0, set_={"a": 1}, actor=actor)
    counts.append(AuditEvent.objects.count())
    key_definition_save(key="a", description="A", actor=actor)
    counts.append(AuditEvent.objects.count())
    token, _ = token_create(name="ci", scopes=["config:read"], actor=actor)
    counts.append(AuditEvent.objects.count())
    token_revoke(token=token, actor=actor)
    counts.append(AuditEvent.objects.count())
    assert counts == [1, 2, 3, 4, 5]
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == [
        "layer.create",
        "version.publish",
        "keydef.save",
        "token.create",
        "token.revoke",
    ]


def test_secret_reveal__audited_with_keys_not_values(make_layer, actor):
    make_layer("global", {"s": "plain-text-secret"}, secrets=["s"])
    config_reveal(environment="dev", service="chat", user=None, actor=actor)
    event = AuditEvent.objects.order_by("seq").last()
    assert (event.action, event.changes["keys"]) == ("secret.reveal", ["s"])
    assert "plain-text-secret" not in json.dumps(event.changes)


@pytest.mark.django_db(transaction=True)
def test_version_publish__audit_event_cannot_be_stored__nothing_is_committed(make_layer, actor, monkeypatch):
    layer = make_layer("global", {"a": 1})
    revision, events = registry_revision(), AuditEvent.objects.count()

    def failing_create(**kwargs):
        raise DatabaseError("disk full while writing the audit event")

    monkeypatch.setattr(AuditEvent.objects, "create", failing_create)
    with pytest.raises(DatabaseError):
        version_publish(layer=layer, base_version=1, set_={"a": 2}, actor=actor)
    monkeypatch.undo()
    layer.refresh_from_db()
    assert layer.current_version == 1
    assert LayerVersion.objects.filter(layer=layer).count() == 1
    assert (registry_revision(), AuditEvent.objects.count()) == (revision, events)


@pytest.mark.django_db(transaction=True)
def test_audit_record__outside_a_transaction__refused(actor):
    with pytest.raises(RuntimeError, match="inside the write's transaction"):
        audit.audit_record(actor=actor, action="x", target="y")
    assert not AuditEvent.objects.exists()


def _tamper(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=AuditEvent._meta.db_table), params)


def test_verify_audit__untouched_chain__passes(make_layer, actor, capsys):
    make_layer("global", {"a": 1})
    call_command("verify_audit")
    assert "Audit chain intact: 2 event(s) verified." in capsys.readouterr().out


def test_verify_audit__altered_event__names_the_first_broken_link(make_layer, actor):
    layer = make_layer("global", {"a": 1})
    version_publish(layer=layer, base_version=1, set_={"a": 2}, actor=actor)
    victim = AuditEvent.objects.get(seq=2)
    _tamper("UPDATE {table} SET actor = %s WHERE id = %s", ["admin:someone-else", victim.pk])
    with pytest.raises(CommandError, match=r"audit event #2: its content does not match its hash"):
        call_command("verify_audit")


def test_verify_audit__rehashed_event__breaks_the_next_link(make_layer, actor):
    layer = make_layer("global", {"a": 1})
    version_publish(layer=layer, base_version=1, set_={"a": 2}, actor=actor)
    _tamper("UPDATE {table} SET hash = %s WHERE seq = 2", ["f" * 64])
    verified, broken = audit.audit_verify()
    assert (verified, broken.seq) == (1, 2)
    _tamper("UPDATE {table} SET prev_hash = %s WHERE seq = 3", ["f" * 64])
    # Event 2's content no longer matches its (forged) hash: still the first broken link.
    assert audit.audit_verify()[1].seq == 2


def test_verify_audit__deleted_event__reported_missing(make_layer, actor):
    layer = make_layer("global", {"a": 1})
    version_publish(layer=layer, base_version=1, set_={"a": 2}, actor=actor)
    _tamper("DELETE FROM {table} WHERE seq = %s", [2])
    assert str(audit.audit_verify()[1]).startswith("audit event #2: missing")
    _tamper("DELETE FROM {table} WHERE seq = %s", [3])
    assert str(audit.audit_verify()[1]).startswith("audit event #2: missing")


def test_verify_audit__last_event_deleted__reported_from_chain_head(make_layer, actor):
    make_layer("global", {"a": 1})
    _tamper("DELETE FROM {table} WHERE seq = %s", [2])
    assert str(audit.audit_verify()[1]).startswith("audit event #2: missing: the chain head says 2")
    assert Layer.objects.count() == 1
