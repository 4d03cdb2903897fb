"""Versions store what they changed (SPEC §7): a one-key publish writes the same rows and runs the
same queries whatever the layer's size, reading any version is one query, the layer's size limit
holds without reading the layer, and registries of the previous schema upgrade in place."""

import json
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from config_registry import crypto
from config_registry.backup import registry_export, registry_import
from config_registry.limits import MAX_LAYER_BYTES, MAX_VALUE_BYTES
from config_registry.memory import memos_clear
from config_registry.models import Entry, Layer, LayerVersion
from config_registry.selectors import config_resolve, version_entries, version_states
from config_registry.services import InvalidInput, version_publish, version_rollback
from config_registry.state import state_clear


def _one_key_publish(layer: Layer, actor) -> tuple[int, int]:
    """(entry rows written, queries run) by publishing one changed key."""
    layer.refresh_from_db()
    rows_before = Entry.objects.count()
    with CaptureQueriesContext(connection) as queries:
        version_publish(layer=layer, base_version=layer.current_version, set_={"k.0007": "changed"}, actor=actor)
    return Entry.objects.count() - rows_before, len(queries)


def test_one_key_publish__rows_and_queries__independent_of_the_layer_size(make_layer, actor):
    small = make_layer("environment:small", {f"k.{i:04}": i for i in range(20)})
    big = make_layer("environment:big", {f"k.{i:04}": i for i in range(2000)})
    in_small, in_big = _one_key_publish(small, actor), _one_key_publish(big, actor)
    assert in_small == in_big and in_small[0] == 1
    assert Entry.objects.filter(layer=big).count() == 2001  # 2,000 first, then one row a change


def test_any_version__read_in_one_query__complete_and_exact(make_layer, actor):
    layer = make_layer("global", {"a": 1, "b": 2, "db.password": "one"}, secrets=["db.password"])
    version_publish(layer=layer, base_version=1, set_={"a": 10}, unset=["b"], actor=actor)
    version_publish(layer=layer, base_version=2, set_={"b": 3, "db.password": "two"}, actor=actor)
    version_rollback(layer=layer, to_version=1, base_version=3, actor=actor)
    expected = {
        1: {"a": 1, "b": 2, "db.password": "one"},
        2: {"a": 10, "db.password": "one"},
        3: {"a": 10, "b": 3, "db.password": "two"},
        4: {"a": 1, "b": 2, "db.password": "one"},
    }
    for number, entries in expected.items():
        with CaptureQueriesContext(connection) as queries:
            masked, secrets = version_entries(layer, number)
        assert len(queries) == 1
        assert masked == {**entries, "db.password": "********"} and secrets == ["db.password"]
        assert {key: state.value for key, state in version_states(layer, number).items()} == entries
    # The rollback re-wrote only what differed from version 3, its secret sealed for version 4.
    assert sorted(Entry.objects.filter(version__number=4).values_list("key", flat=True)) == ["a", "b", "db.password"]
    assert Entry.objects.filter(version__number=2).count() == 1  # a; b's removal is the end of b's first row


def test_small_change_to_a_layer_of_big_values__stores_a_small_row(make_layer, actor):
    """The adversarial review's 50 MB in 1.8 s: 20 small publishes to 9 keys of 250 KB each."""
    big = "x" * (250 * 1024 - 2)
    layer = make_layer("service:bulky", {f"blob.b{i}": big for i in range(9)})
    stored_before = sum(entry.size() for entry in Entry.objects.all())
    for n in range(20):
        layer.refresh_from_db()
        version_publish(layer=layer, base_version=layer.current_version, set_={"small.counter": n}, actor=actor)
    assert sum(entry.size() for entry in Entry.objects.all()) - stored_before < 100  # 20 rows of one number
    assert config_resolve(environment="e", service="bulky", user=None).values["blob.b8"] == big


def test_layer_size_limit__counted_without_reading_the_layer__freed_by_unset(make_layer, actor):
    chunk = "y" * (MAX_VALUE_BYTES - 2)
    count = MAX_LAYER_BYTES // MAX_VALUE_BYTES
    layer = make_layer("global", {f"k.v{i}": chunk for i in range(count)})
    assert layer.current_bytes == count * MAX_VALUE_BYTES
    with pytest.raises(InvalidInput, match="would hold"):
        version_publish(layer=layer, base_version=1, set_={"one.more": "z" * 100}, actor=actor)
    assert LayerVersion.objects.filter(layer=layer).count() == 1  # nothing written
    version_publish(layer=layer, base_version=1, set_={"one.more": "z" * 100}, unset=["k.v0"], actor=actor)
    layer.refresh_from_db()
    assert layer.current_bytes == sum(entry.size() for entry in Entry.objects.at(layer.pk, 2))


# The upgrade from the previous schema (every version a complete copy) ---------------------------

PREVIOUS = [("config_registry", "0002_security_hardening")]


def _sealed(value, ref: str, key: str, number: int) -> str:
    """A ciphertext as the previous release stored it: bound to layer, key and its version."""
    ring = MultiFernet([Fernet(k) for k in settings.CONFIG_REGISTRY_KEYS])
    envelope = {"l": ref, "k": key, "n": number, "v": value}
    return ring.encrypt(json.dumps(envelope, separators=(",", ":")).encode()).decode()


# What the previous release wrote: version 3 sets b, version 4 rotates the password and removes a,
# version 5 rolls back to version 2.
HISTORY = {
    1: {"a": 1, "db.password": "first"},
    2: {"a": 2, "db.password": "first"},
    3: {"a": 2, "b": [1, 2], "db.password": "first"},
    4: {"b": [1, 2], "db.password": "second"},
    5: {"a": 2, "db.password": "first"},
}


@pytest.fixture
def previous_schema():
    executor = MigrationExecutor(connection)
    executor.migrate(PREVIOUS)
    yield executor.loader.project_state(PREVIOUS).apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    memos_clear()
    state_clear()


def _previous_registry(apps) -> None:
    Layer_, Version, Entry_ = (apps.get_model("config_registry", name) for name in ("Layer", "LayerVersion", "Entry"))
    State = apps.get_model("config_registry", "RegistryState")
    layer = Layer_.objects.create(level="global", name="", current_version=len(HISTORY))
    for number, entries in HISTORY.items():
        version = Version.objects.create(
            layer=layer,
            number=number,
            revision=number,
            author="old",
            created_at=datetime.now(UTC),
            rolled_back_from=2 if number == 5 else None,
        )
        for key, value in entries.items():
            if key == "db.password":
                Entry_.objects.create(
                    version=version, key=key, secret=True, ciphertext=_sealed(value, "global", key, number)
                )
            else:
                Entry_.objects.create(version=version, key=key, value=value)
    State.objects.create(pk=1, revision=len(HISTORY))


@pytest.mark.django_db(transaction=True)
def test_upgrade__copies_become_ranges__every_version_reads_as_before(previous_schema):
    _previous_registry(previous_schema)
    assert previous_schema.get_model("config_registry", "Entry").objects.count() == 11
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    layer = Layer.objects.get(level="global")
    for number, entries in HISTORY.items():
        assert {key: state.value for key, state in version_states(layer, number).items()} == entries
        resolved = config_resolve(environment="e", service="s", user=None, position=None)
        assert resolved.revision == 5
    # a: 1 | 2 (v2-v3) | 2 again at v5; password: first (v1-v3) | second | first (v5); b: v3-v4.
    assert Entry.objects.count() == 7
    assert layer.current_bytes == sum(entry.size() for entry in Entry.objects.at(layer.pk, 5))
    # The upgraded registry goes on: a one-key publish writes one row, secrets open where they hold.
    version_publish(layer=layer, base_version=5, set_={"c": True}, actor=_cli_actor(), comment="after the upgrade")
    assert Entry.objects.count() == 8
    assert version_states(layer, 6)["db.password"].value == "first"


@pytest.mark.django_db(transaction=True)
def test_upgrade__then_downgrade__previous_schema_gets_its_copies_back(previous_schema):
    _previous_registry(previous_schema)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    executor = MigrationExecutor(connection)
    executor.migrate(PREVIOUS)
    apps = executor.loader.project_state(PREVIOUS).apps
    ring = MultiFernet([Fernet(k) for k in settings.CONFIG_REGISTRY_KEYS])
    Entry_ = apps.get_model("config_registry", "Entry")
    for number, entries in HISTORY.items():
        rows = Entry_.objects.filter(version__number=number)
        found = {}
        for row in rows:
            if row.secret:
                envelope = json.loads(ring.decrypt(row.ciphertext.encode()))
                assert envelope["n"] == number  # bound to its own version, as the previous release expects
                found[row.key] = envelope["v"]
            else:
                found[row.key] = row.value
        assert found == entries


def _cli_actor():
    from config_registry.audit import Actor

    return Actor("cli", "manage.py", may_write_security=True)


# Export files keep their format ---------------------------------------------------------------


def _previous_export() -> dict:
    """An export as the previous release wrote it: every version complete, each secret's ciphertext
    sealed for its own version."""
    versions = []
    for number, entries in HISTORY.items():
        versions.append(
            {
                "number": number,
                "author": "old",
                "created_at": "2026-11-01T00:00:00+00:00",
                "comment": "",
                "rolled_back_from": 2 if number == 5 else None,
                "entries": {k: v for k, v in entries.items() if k != "db.password"},
                "secrets": {"db.password": crypto.encrypt(entries["db.password"], place=_PLACE, version=number)},
            }
        )
    return {
        "format": "config-registry-export",
        "format_version": 1,
        "secrets": "ciphertext",
        "key_definitions": [],
        "layers": [{"ref": "global", "description": "", "priority": 0, "versions": versions}],
    }


_PLACE = crypto.Place("global", "db.password")


@pytest.mark.django_db(transaction=True)
def test_import__an_export_of_the_previous_release__every_version_exact_and_compacted():
    registry_import(data=_previous_export(), actor=_cli_actor())
    layer = Layer.objects.get(level="global")
    for number, entries in HISTORY.items():
        assert {key: state.value for key, state in version_states(layer, number).items()} == entries
    assert Entry.objects.count() == 7


@pytest.mark.django_db(transaction=True)
def test_export_then_import__same_format__round_trips_every_version():
    registry_import(data=_previous_export(), actor=_cli_actor())
    exported = registry_export(actor=_cli_actor())
    layer_file = exported["layers"][0]
    assert [{**version["entries"], **dict.fromkeys(version["secrets"], "?")} for version in layer_file["versions"]] == [
        {**entries, "db.password": "?"} for entries in HISTORY.values()
    ]
    plaintext = registry_export(decrypt_secrets=True, actor=_cli_actor())
    assert [v["secrets"]["db.password"] for v in plaintext["layers"][0]["versions"]] == [
        e["db.password"] for e in HISTORY.values()
    ]
    # Into an empty registry: the same versions come back.
    call_command("flush", "--noinput")
    registry_import(data=exported, actor=_cli_actor())
    layer = Layer.objects.get(level="global")
    for number, entries in HISTORY.items():
        assert {key: state.value for key, state in version_states(layer, number).items()} == entries


def test_entry_rows__content_immutable__closed_only_once(make_layer, actor):
    from config_registry.models import ImmutableRecord

    layer = make_layer("global", {"a": 1})
    row = Entry.objects.get(layer=layer, key="a")
    with pytest.raises(ImmutableRecord):
        Entry.objects.filter(pk=row.pk).update(value=2)
    version_publish(layer=layer, base_version=1, set_={"a": 2}, actor=actor)
    assert Entry.objects.get(pk=row.pk).valid_to == 2
    with pytest.raises(ImmutableRecord, match="closed already"):
        Entry.objects.close(entry_ids=[row.pk], at=3)
    assert Entry.objects.get(pk=row.pk).valid_to == 2  # the first close stands
