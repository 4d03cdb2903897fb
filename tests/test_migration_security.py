"""Upgrading a registry made by the previous schema (issue #11): its secrets get bound to their
versions and its audit chain keyed, and both verify afterwards; a broken chain stops the upgrade."""

import hashlib
import json
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from config_registry import crypto
from config_registry.audit import audit_verify
from config_registry.exceptions import SecretUndecryptable
from config_registry.memory import memos_clear
from config_registry.models import Entry, Layer
from config_registry.selectors import version_states
from config_registry.state import state_clear

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("config_registry", "0001_initial")]
HARDENING = ("config_registry", "0002_security_hardening")


def _upgrade() -> None:
    """Migrate to the latest schema, as an operator upgrading from the previous release does."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _legacy_seal(value, ref: str, key: str) -> str:
    """A ciphertext as the previous release sealed it: layer and key bound, not the version."""
    ring = MultiFernet([Fernet(k) for k in settings.CONFIG_REGISTRY_KEYS])
    return ring.encrypt(json.dumps({"l": ref, "k": key, "v": value}, separators=(",", ":")).encode()).decode()


def _legacy_hash(seq, at, actor, action, target, source, changes, prev):
    payload = json.dumps(
        [seq, at.astimezone(UTC).isoformat(), actor, action, target, source, changes, prev],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@pytest.fixture
def old_schema():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    yield apps
    executor = MigrationExecutor(connection)
    if HARDENING not in executor.loader.applied_migrations:
        apps.get_model("config_registry", "AuditEvent").objects.all().delete()  # a test left a broken chain
    executor.migrate(executor.loader.graph.leaf_nodes())
    memos_clear()
    state_clear()


def _old_registry(apps, *, tamper: bool = False):
    Layer_, Version, Entry_ = (apps.get_model("config_registry", name) for name in ("Layer", "LayerVersion", "Entry"))
    Event, State = apps.get_model("config_registry", "AuditEvent"), apps.get_model("config_registry", "RegistryState")
    layer = Layer_.objects.create(level="global", name="", current_version=2)
    for number, password in ((1, "first"), (2, "second")):
        version = Version.objects.create(
            layer=layer, number=number, revision=number, author="old", created_at=datetime.now(UTC)
        )
        Entry_.objects.create(
            version=version, key="db.password", secret=True, ciphertext=_legacy_seal(password, "global", "db.password")
        )
    prev = "0" * 64
    for seq in (1, 2, 3):
        fields = dict(
            seq=seq,
            at=datetime(2026, 1, seq, tzinfo=UTC),
            actor="old",
            action="version.publish",
            target="global",
            source="",
            changes={"version": seq},
        )
        digest = _legacy_hash(*fields.values(), prev)
        if tamper and seq == 2:
            fields["changes"] = {"version": 99}
        Event.objects.create(**fields, prev_hash=prev, hash=digest)
        prev = digest
    State.objects.create(pk=1, revision=2, audit_seq=3, audit_head=prev)


def test_upgrade__old_ciphertexts_bound_to_their_versions_and_old_chain_keyed(old_schema):
    _old_registry(old_schema)
    _upgrade()
    layer = Layer.objects.get(level="global")
    assert version_states(layer, 1)["db.password"].value == "first"
    assert version_states(layer, 2)["db.password"].value == "second"
    verified, broken = audit_verify()
    assert (verified, broken) == (3, None)
    # After the upgrade, replaying version 1's ciphertext in version 2 is refused.
    first = Entry.objects.get(version__number=1)
    second = Entry.objects.get(version__number=2)
    Entry.objects.rewrap(entry_id=second.pk, ciphertext=first.ciphertext)
    with pytest.raises(SecretUndecryptable, match="belongs to version 1"):
        version_states(layer, 2)


def test_upgrade__a_legacy_ciphertext_left_behind__refused_until_rotate_keys(old_schema):
    _old_registry(old_schema)
    _upgrade()
    layer = Layer.objects.get(level="global")
    entry = Entry.objects.get(version__number=2)
    Entry.objects.rewrap(entry_id=entry.pk, ciphertext=_legacy_seal("second", "global", "db.password"))
    with pytest.raises(SecretUndecryptable, match="rotate_keys"):
        version_states(layer, 2)
    from config_registry.audit import Actor
    from config_registry.services import keys_rotate

    report = keys_rotate(actor=Actor("cli", "manage.py", may_write_security=True))
    assert report.rewritten == 1 and not report.unreadable
    assert version_states(layer, 2)["db.password"].value == "second"
    assert (
        crypto.reencrypt(
            Entry.objects.get(pk=entry.pk).ciphertext, place=crypto.Place("global", "db.password"), version=2
        )
        is None
    )


def test_upgrade__old_chain_already_broken__upgrade_stops_naming_the_event(old_schema):
    _old_registry(old_schema, tamper=True)
    with pytest.raises(RuntimeError, match="#2"):
        _upgrade()
