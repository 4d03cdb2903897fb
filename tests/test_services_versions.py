"""Publishing, rolling back and diffing versions through the services."""

import pytest

from config_registry.diff import diff_as_dict
from config_registry.exceptions import InvalidInput, NotFound, VersionConflict
from config_registry.models import AuditEvent, Entry, ImmutableRecord, Layer, LayerVersion
from config_registry.selectors import layer_get, registry_revision, version_diff, version_entries, version_states
from config_registry.services import key_definition_save, layer_create, version_publish, version_rollback


def _values(layer, number):
    return {key: state.value for key, state in version_states(layer, number).items()}


def test_version_publish__from_base__new_version_has_base_plus_set_minus_unset(make_layer, actor):
    layer = make_layer("global", {"a": 1, "b": 2, "c": 3})
    version = version_publish(
        layer=layer, base_version=1, set_={"b": 20, "d": 4}, unset=["c"], actor=actor, comment="tune"
    )
    assert (version.number, version.author, version.comment) == (2, "admin:tester", "tune")
    assert _values(layer, 2) == {"a": 1, "b": 20, "d": 4}
    assert _values(layer, 1) == {"a": 1, "b": 2, "c": 3}  # the old version is untouched
    layer.refresh_from_db()
    assert (layer.current_version, layer.updated_by) == (2, "admin:tester")


def test_version_publish__every_publish__moves_the_global_revision(make_layer, actor):
    first = make_layer("global", {"a": 1})
    before = registry_revision()
    other = make_layer("service:chat", {"b": 1})
    version = version_publish(layer=first, base_version=1, set_={"a": 2}, actor=actor)
    assert registry_revision() == before + 2 == version.revision
    assert other.versions.get().revision == before + 1


@pytest.mark.django_db(transaction=True)
def test_version_publish__announces_the_new_position_once(make_layer, actor, monkeypatch):
    from config_registry import state

    layer = make_layer("global", {"a": 1})
    announced = []
    monkeypatch.setattr(state.broadcaster(), "announce", lambda position: announced.append(position.revision))
    version = version_publish(layer=layer, base_version=1, set_={"a": 2}, actor=actor)  # a version, an audit event
    assert announced == [version.revision]


def test_version_publish__stale_base__raises_conflict_and_writes_nothing(make_layer, actor):
    layer = make_layer("global", {"a": 1})
    version_publish(layer=layer, base_version=1, set_={"a": 2}, actor=actor)
    revision, events = registry_revision(), AuditEvent.objects.count()
    with pytest.raises(VersionConflict) as raised:
        version_publish(layer=layer, base_version=1, set_={"a": 3}, actor=actor)
    assert raised.value.current == 2
    assert str(raised.value) == ("layer global is at version 2, your change was based on 1: reload and reapply")
    assert LayerVersion.objects.filter(layer=layer).count() == 2
    assert (registry_revision(), AuditEvent.objects.count()) == (revision, events)


@pytest.mark.parametrize(
    "set_, unset, secrets, field",
    [
        ({"Bad Key": 1}, [], [], "Bad Key"),
        ({"a..b": 1}, [], [], "a..b"),
        ({"x" * 201: 1}, [], [], "x" * 201),
        ({"a": 1}, ["a"], [], "a"),
        ({"a": 1}, [], ["b"], "b"),
        ({"a": float("nan")}, [], [], "a"),
        ({"a": {1, 2}}, [], [], "a"),
        ({"a": "x" * 300_000}, [], [], "a"),
        ({}, ["missing"], [], "missing"),
    ],
)
def test_version_publish__bad_input__names_the_key_and_writes_nothing(make_layer, actor, set_, unset, secrets, field):
    layer = make_layer("global", {"keep": 1})
    with pytest.raises(InvalidInput) as raised:
        version_publish(layer=layer, base_version=1, set_=set_, unset=unset, secrets=secrets, actor=actor)
    assert field in raised.value.errors
    assert LayerVersion.objects.filter(layer=layer).count() == 1


@pytest.mark.parametrize("base_version", [-1, "1", None, True, 1.0])
def test_version_publish__malformed_base_version__invalid_input(make_layer, actor, base_version):
    layer = make_layer("global", {"a": 1})
    with pytest.raises(InvalidInput, match="base_version"):
        version_publish(layer=layer, base_version=base_version, set_={"a": 2}, actor=actor)


def test_version_publish__value_violating_schema__rejected_key_by_key(make_layer, actor):
    key_definition_save(key="chat.max_message_length", schema={"type": "integer", "minimum": 1}, actor=actor)
    key_definition_save(key="chat.enabled", schema={"type": "boolean"}, actor=actor)
    layer = make_layer("global")
    with pytest.raises(InvalidInput) as raised:
        version_publish(
            layer=layer,
            base_version=0,
            actor=actor,
            set_={"chat.max_message_length": 0, "chat.enabled": "yes", "free": "x"},
        )
    assert raised.value.errors == {
        "chat.max_message_length": "0 is less than the minimum of 1",
        "chat.enabled": "'yes' is not of type 'boolean'",
    }
    assert layer.versions.count() == 0


def test_version_publish__nothing_changes__refused(make_layer, actor):
    layer = make_layer("global", {"a": 1, "s": "x"}, secrets=["s"])
    with pytest.raises(InvalidInput, match="nothing to publish"):
        version_publish(layer=layer, base_version=1, set_={"a": 1, "s": "x"}, actor=actor)


def test_version_publish__type_change_with_equal_python_value__is_a_change(make_layer, actor):
    layer = make_layer("global", {"a": 1})
    version_publish(layer=layer, base_version=1, set_={"a": True}, actor=actor)
    assert _values(layer, 2)["a"] is True


def test_version_publish__secret_key_set_without_flag__stays_secret(make_layer, actor):
    layer = make_layer("global", {"db.password": "old"}, secrets=["db.password"])
    version_publish(layer=layer, base_version=1, set_={"db.password": "new"}, actor=actor)
    assert version_states(layer, 2)["db.password"].secret is True
    assert Entry.objects.get(version__number=2, key="db.password").value is None


def test_version_publish__key_defined_secret__encrypted_even_if_not_flagged(make_layer, actor):
    key_definition_save(key="api.token", secret=True, actor=actor)
    layer = make_layer("global", {"api.token": "t0ps3cret"})
    entry = Entry.objects.get(version__layer=layer, key="api.token")
    assert entry.secret and entry.value is None and "t0ps3cret" not in entry.ciphertext


def test_layer_create__bad_or_unknown_subjects__clear_errors(db, actor, make_user):
    make_user("alice")
    for ref, message in [
        ("user:nobody", "no user named 'nobody'"),
        ("group:ghosts", "no group named 'ghosts'"),
        ("planet:mars", "is not one of global"),
        ("environment:Prod", "not a valid environment name"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            layer_create(ref=ref, actor=actor)
    layer_create(ref="user:alice", actor=actor)
    with pytest.raises(InvalidInput, match="already exists"):
        layer_create(ref="user:alice", actor=actor)
    assert list(Layer.objects.values_list("name", flat=True)) == ["alice"]


def test_layer_get__unknown_layer__not_found(db):
    with pytest.raises(NotFound, match="layer service:nope does not exist"):
        layer_get("service:nope")


def test_version_rollback__to_old_version__publishes_a_copy_as_new_version(make_layer, actor):
    layer = make_layer("global", {"a": 1, "s": "one"}, secrets=["s"])
    version_publish(layer=layer, base_version=1, set_={"a": 2, "s": "two", "b": 3}, actor=actor)
    version = version_rollback(layer=layer, to_version=1, base_version=2, actor=actor)
    assert (version.number, version.rolled_back_from, version.comment) == (3, 1, "Rollback to version 1")
    assert version_states(layer, 3) == version_states(layer, 1)
    with pytest.raises(VersionConflict):
        version_rollback(layer=layer, to_version=1, base_version=2, actor=actor)
    with pytest.raises(NotFound, match="has no version 9"):
        version_rollback(layer=layer, to_version=9, base_version=3, actor=actor)


def test_version_rollback__to_value_now_violating_schema__refused(make_layer, actor):
    layer = make_layer("global", {"limit": 0})
    version_publish(layer=layer, base_version=1, set_={"limit": 5}, actor=actor)
    key_definition_save(key="limit", schema={"type": "integer", "minimum": 1}, actor=actor)
    with pytest.raises(InvalidInput) as raised:
        version_rollback(layer=layer, to_version=1, base_version=2, actor=actor)
    assert "limit" in raised.value.errors


def test_version_diff__between_any_versions__added_removed_changed_and_secrets_only_changed(make_layer, actor):
    layer = make_layer("global", {"a": 1, "gone": True, "s": "old-secret"}, secrets=["s"])
    version_publish(
        layer=layer, base_version=1, set_={"a": 2, "new": [1], "s": "new-secret"}, unset=["gone"], actor=actor
    )
    diff = diff_as_dict(version_diff(layer=layer, from_number=1, to_number=2))
    assert diff == {
        "added": {"new": {"kind": "added", "secret": False, "after": [1]}},
        "removed": {"gone": {"kind": "removed", "secret": False, "before": True}},
        "changed": {
            "a": {"kind": "changed", "secret": False, "before": 1, "after": 2},
            "s": {"kind": "changed", "secret": True},
        },
    }
    assert "secret" not in str(diff).replace("'secret'", "")
    assert diff_as_dict(version_diff(layer=layer, from_number=2, to_number=1))["added"].keys() == {"gone"}
    assert version_entries(layer, 2) == ({"a": 2, "new": [1], "s": "********"}, ["s"])


def test_versions_and_entries__orm_edits_and_deletes__refused(make_layer):
    layer = make_layer("global", {"a": 1})
    version, entry = layer.versions.get(), Entry.objects.get(key="a")
    version.comment = "rewritten history"
    for attempt in (
        version.save,
        version.delete,
        entry.delete,
        lambda: LayerVersion.objects.filter(pk=version.pk).update(comment="x"),
        lambda: Entry.objects.filter(pk=entry.pk).update(value=2),
        lambda: Entry.objects.all().delete(),
        lambda: AuditEvent.objects.all().delete(),
    ):
        with pytest.raises(ImmutableRecord):
            attempt()
    assert LayerVersion.objects.get().comment == ""


def test_layer_with_versions__cannot_be_deleted(make_layer):
    from django.db.models import ProtectedError

    layer = make_layer("global", {"a": 1})
    with pytest.raises(ProtectedError):
        layer.delete()


def test_entries__plain_value_and_ciphertext__cannot_coexist_in_a_row(make_layer):
    from django.db import IntegrityError, transaction

    make_layer("global", {"a": 1})
    version = LayerVersion.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Entry.objects.create(
            version=version, layer=version.layer, valid_from=1, key="leak", secret=True, value="plain", ciphertext="x"
        )
    assert not Entry.objects.filter(key="leak").exists()
