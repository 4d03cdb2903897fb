"""The adversarial review of issue #11, with database write access: the audit chain rewritten or
cut, ciphertexts of an older schema, single-use tickets the cache forgot, imports of strangers."""

import json

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import QuerySet

from config_registry import audit
from config_registry.audit import Actor
from config_registry.models import AuditEvent, RegistryState

pytestmark = pytest.mark.django_db
ACTOR = Actor("admin:tester", may_write_security=True)


def _events(make_layer, count: int = 6):
    layer = make_layer("global", {"a.b": 0})
    from config_registry.services import version_publish

    for n in range(1, count):
        version_publish(layer=layer, base_version=n, set_={"a.b": n}, actor=ACTOR)
    return list(AuditEvent.objects.order_by("seq"))


def _force(events: list[AuditEvent], **fields) -> None:
    QuerySet.update(AuditEvent.objects.filter(pk__in=[e.pk for e in events]), **fields)


def _rehash_from(seq: int, hash_function) -> None:
    """What the reviewer did: change an event, recompute every later hash and the head."""
    events = list(AuditEvent.objects.order_by("seq"))
    prev = events[seq - 2].hash if seq > 1 else audit.GENESIS
    for event in events[seq - 1 :]:
        changes = {"forged": True} if event.seq == seq else event.changes
        digest = hash_function(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            target=event.target,
            source=event.source,
            changes=changes,
            prev_hash=prev,
        )
        QuerySet.update(AuditEvent.objects.filter(pk=event.pk), changes=changes, prev_hash=prev, hash=digest)
        prev = digest
    RegistryState.objects.filter(pk=1).update(audit_head=prev)


def test_verify_audit__chain_rewritten_with_the_projects_own_hash_function__detected(make_layer, settings):
    _events(make_layer)
    real_key = settings.AUDIT_CHAIN_KEY
    settings.AUDIT_CHAIN_KEY = "what-someone-with-only-the-database-can-guess"
    _rehash_from(3, audit._event_hash)
    settings.AUDIT_CHAIN_KEY = real_key
    with pytest.raises(CommandError, match="#3"):
        call_command("verify_audit")


def test_verify_audit__chain_rewritten_with_plain_sha256__detected(make_layer):
    import hashlib

    def plain(**fields):
        payload = json.dumps(
            [
                fields["seq"],
                fields["at"].isoformat(),
                fields["actor"],
                fields["action"],
                fields["target"],
                fields["source"],
                fields["changes"],
                fields["prev_hash"],
            ],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    _events(make_layer)
    _rehash_from(2, plain)
    with pytest.raises(CommandError, match="#2"):
        call_command("verify_audit")


def test_verify_audit__tail_cut_and_head_wound_back__detected_against_the_recorded_head(make_layer, capsys):
    events = _events(make_layer)
    call_command("verify_audit")
    recorded = capsys.readouterr().out.strip().splitlines()[-1].split()[-1]  # "head: SEQ:HASH"
    assert recorded == f"{events[-1].seq}:{events[-1].hash}"
    cut = events[-2:]
    for event in cut:
        QuerySet.delete(AuditEvent.objects.filter(pk=event.pk))
    RegistryState.objects.filter(pk=1).update(audit_seq=events[-3].seq, audit_head=events[-3].hash)
    call_command("verify_audit")  # alone, a cut tail with a wound-back head looks whole
    with pytest.raises(CommandError, match="cut"):
        call_command("verify_audit", "--expect-head", recorded)


def test_verify_audit__expected_head_older_than_now__passes_when_it_is_in_the_chain(make_layer):
    events = _events(make_layer)
    call_command("verify_audit", "--expect-head", f"{events[2].seq}:{events[2].hash}")
    with pytest.raises(CommandError, match="#3"):
        call_command("verify_audit", "--expect-head", f"{events[2].seq}:{'0' * 64}")


def test_audit_head__logged_after_each_write(make_layer, caplog, django_capture_on_commit_callbacks):
    import logging

    from config_registry.services import version_publish

    layer = make_layer("global", {"a.b": 0})
    with (
        caplog.at_level(logging.INFO, logger="config_registry.audit"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        version_publish(layer=layer, base_version=1, set_={"a.b": 1}, actor=ACTOR)
    head = AuditEvent.objects.order_by("-seq").first()
    assert f"audit head {head.seq}:{head.hash}" in caplog.text


def test_audit_chain__keyed_by_the_bootstrap_key__another_key_does_not_verify(make_layer, settings):
    _events(make_layer, 2)
    assert audit.audit_verify()[1] is None
    settings.AUDIT_CHAIN_KEY = "another-key-entirely"
    verified, broken = audit.audit_verify()
    assert broken is not None and broken.seq == 1


# 17. Single-use tickets forgotten by the cache ------------------------------------------------


def test_ticket__used_then_400_cache_writes__still_refused(make_layer, make_user):
    from chat.tickets import TicketInvalid, ticket_issue, ticket_verify

    make_user("alice")
    make_layer("global", {"chat.signing_keys": ["k" * 40]}, secrets=["chat.signing_keys"])
    ticket = ticket_issue(username="alice").token
    ticket_verify(ticket)
    with pytest.raises(TicketInvalid, match="already used"):
        ticket_verify(ticket)
    for n in range(2000):  # what 2,000 distinct resolves write
        cache.set(f"flood-{n}", n)
    with pytest.raises(TicketInvalid, match="already used"):
        ticket_verify(ticket)


# 18. import_config into a registry without the user -------------------------------------------


def test_import_config__user_layer_without_that_user__refused(make_layer, make_user, tmp_path, actor):
    make_user("alice")
    make_layer("user:alice", {"theme": "dark"})
    path = tmp_path / "export.json"
    call_command("export_config", "--output", str(path))
    from django.contrib.auth.models import User

    from config_registry.models import Entry, Layer, LayerVersion

    QuerySet.delete(Entry.objects.all())
    QuerySet.delete(LayerVersion.objects.all())
    Layer.objects.all().delete()
    User.objects.filter(username="alice").delete()
    with pytest.raises(CommandError, match="alice"):
        call_command("import_config", str(path))
    assert not Layer.objects.exists()


def test_tickets_store_check__small_local_memory_cache__error(settings):
    from config_registry.checks import check_tickets_store

    settings.CACHES = {
        **settings.CACHES,
        "tickets": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "small-tickets"},
    }
    errors = check_tickets_store(None)
    assert [e.id for e in errors] == ["config_registry.E003"] and "300" in errors[0].msg


def test_tickets_store_check__redis_that_evicts__error_naming_the_policy(settings, tmp_path):
    import shutil

    import redis

    from config_registry.checks import check_tickets_store
    from tests.test_faults_redis import PrivateRedis

    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server (Debian package redis-server)")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.config_set("maxmemory", "64mb")
        client.config_set("maxmemory-policy", "allkeys-lru")
        settings.CACHES = {
            **settings.CACHES,
            "tickets": {"BACKEND": "project.infra.redis_cache.RedisCache", "LOCATION": server.url, "KEY_PREFIX": "t"},
        }
        errors = check_tickets_store(None)
        assert [e.id for e in errors] == ["config_registry.E003"] and "allkeys-lru" in errors[0].msg
        client.config_set("maxmemory-policy", "noeviction")
        assert check_tickets_store(None) == []
        client.close()
    finally:
        server.stop()
