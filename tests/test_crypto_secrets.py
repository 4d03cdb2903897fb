"""Secrets at rest: exact round trips, bound to their place, typed errors, clear key errors."""

import pytest
from cryptography.fernet import Fernet
from django.core import checks
from django.db import connection

from config_registry import crypto
from config_registry.exceptions import KeyRingInvalid, SecretUndecryptable
from config_registry.models import Entry
from config_registry.selectors import config_resolve, version_states
from config_registry.services import config_reveal

SPECIAL_VALUES = ["", 0, False, None, [], {}, 0.5, -1, "ünïcode ✓", [1, "a", None], {"nested": {"a": [True]}}]


@pytest.mark.parametrize("value", SPECIAL_VALUES, ids=repr)
def test_secret__any_json_value__round_trips_exactly(make_layer, value):
    layer = make_layer("global", {"s.value": value}, secrets=["s.value"])
    state = version_states(layer, 1)["s.value"]
    assert state.secret is True
    assert state.value == value and type(state.value) is type(value)


@pytest.mark.parametrize("value", SPECIAL_VALUES, ids=repr)
def test_secret__any_json_value__resolves_revealed_exactly(make_layer, actor, value):
    make_layer("global", {"s.value": value}, secrets=["s.value"])
    resolved = config_reveal(environment="dev", service="chat", user=None, actor=actor)
    assert resolved.values["s.value"] == value and type(resolved.values["s.value"]) is type(value)


def _secret_rows():
    return {(e.version.layer.ref, e.key): e for e in Entry.objects.filter(secret=True).select_related("version__layer")}


def _raw_update(entry_id: int, ciphertext: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Entry._meta.db_table} SET ciphertext = %s WHERE id = %s", [ciphertext, entry_id])


def test_ciphertext__copied_by_sql_to_another_layer__fails_with_typed_error(make_layer):
    make_layer("global", {"db.password": "global-pw"}, secrets=["db.password"])
    target = make_layer("environment:prod", {"db.password": "prod-pw"}, secrets=["db.password"])
    rows = _secret_rows()
    _raw_update(rows[("environment:prod", "db.password")].pk, rows[("global", "db.password")].ciphertext)

    with pytest.raises(SecretUndecryptable) as raised:
        version_states(target, 1)
    error = raised.value
    assert (error.layer, error.version, error.key) == ("environment:prod", 1, "db.password")
    assert "copied here" in str(error) and "global-pw" not in str(error)


def test_ciphertext__copied_by_sql_to_another_key__fails_with_typed_error(make_layer, actor):
    layer = make_layer("global", {"a.secret": "A", "b.secret": "B"}, secrets=["a.secret", "b.secret"])
    rows = _secret_rows()
    _raw_update(rows[("global", "b.secret")].pk, rows[("global", "a.secret")].ciphertext)
    with pytest.raises(SecretUndecryptable, match="'b.secret' in layer global version 1"):
        version_states(layer, 1)
    with pytest.raises(SecretUndecryptable):
        config_reveal(environment="dev", service="x", user=None, actor=actor)


def test_ciphertext__one_flipped_byte__fails_with_typed_error(make_layer):
    layer = make_layer("global", {"a.secret": "A"}, secrets=["a.secret"])
    entry = _secret_rows()[("global", "a.secret")]
    middle = len(entry.ciphertext) // 2
    flipped = (
        entry.ciphertext[:middle] + ("A" if entry.ciphertext[middle] != "A" else "B") + entry.ciphertext[middle + 1 :]
    )
    _raw_update(entry.pk, flipped)
    with pytest.raises(SecretUndecryptable, match="no configured key opens it, or it was altered"):
        version_states(layer, 1)


def test_secret__masked_resolve__never_decrypts_a_broken_value(make_layer):
    """A broken secret that is overridden or masked does not break everyone's resolution."""
    make_layer("global", {"a.secret": "A", "plain": 1}, secrets=["a.secret"])
    _raw_update(_secret_rows()[("global", "a.secret")].pk, "garbage")
    resolved = config_resolve(environment="dev", service="x", user=None)
    assert resolved.values == {"a.secret": "********", "plain": 1}


def test_decrypt__with_a_key_that_is_not_configured__raises_typed_error(settings):
    sealed = crypto.encrypt("v", place=crypto.Place("global", "k"), version=1)
    settings.CONFIG_REGISTRY_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(SecretUndecryptable):
        crypto.decrypt(sealed, place=crypto.Place("global", "k"), version=1)


@pytest.mark.parametrize(
    "keys, message",
    [
        ([], "CONFIG_REGISTRY_KEYS is empty"),
        (["not-a-key"], "CONFIG_REGISTRY_KEYS entry 1 is not a Fernet key"),
        ([Fernet.generate_key().decode(), "short"], "CONFIG_REGISTRY_KEYS entry 2 is not a Fernet key"),
    ],
)
def test_key_ring__wrong_key_material__clear_error_and_failing_check(settings, keys, message):
    settings.CONFIG_REGISTRY_KEYS = keys
    with pytest.raises(KeyRingInvalid, match=message):
        crypto.encrypt("v", place=crypto.Place("global", "k"), version=1)
    errors = [e for e in checks.run_checks() if e.id == "config_registry.E002"]
    assert len(errors) == 1 and message in errors[0].msg


def test_multifernet__old_key_kept_second__still_decrypts(settings):
    old = settings.CONFIG_REGISTRY_KEYS[0]
    sealed = crypto.encrypt({"x": 1}, place=crypto.Place("global", "k"), version=1)
    settings.CONFIG_REGISTRY_KEYS = [Fernet.generate_key().decode(), old]
    assert crypto.decrypt(sealed, place=crypto.Place("global", "k"), version=1) == {"x": 1}
