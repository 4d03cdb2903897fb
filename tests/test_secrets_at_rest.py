"""A secret's plaintext never rests anywhere: not in the database bytes, a dump, an export or the
audit log, before or after key rotation; rotation loses nothing."""

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from config_registry.audit import Actor
from config_registry.backup import registry_export
from config_registry.models import Entry
from config_registry.selectors import version_states
from config_registry.services import keys_rotate, version_publish


@pytest.fixture
def planted(make_layer, actor):
    """Two distinctive secrets (in two versions) whose plaintext must never be found at rest."""
    first, second = f"plain-{secrets.token_hex(8)}", f"plain-{secrets.token_hex(8)}"
    layer = make_layer("global", {"db.password": first, "public": "visible"}, secrets=["db.password"])
    version_publish(layer=layer, base_version=1, set_={"db.password": second}, actor=actor)
    return layer, [first, second]


def _sqlite_bytes() -> bytes:
    path = Path(connection.settings_dict["NAME"])
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _pg_dump() -> bytes:
    if not shutil.which("pg_dump"):
        pytest.skip("pg_dump is not installed")
    params = connection.get_connection_params()
    command = [
        "pg_dump",
        "--data-only",
        "-h",
        params.get("host") or "127.0.0.1",
        "-p",
        str(params.get("port") or 5432),
        "-U",
        params.get("user") or "postgres",
        params["dbname"],
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        check=True,
        env={"PGPASSWORD": params.get("password") or "", "PATH": "/usr/bin:/bin"},
    )
    return result.stdout


def _rotate_to_new_key(settings) -> str:
    new = Fernet.generate_key().decode()
    settings.CONFIG_REGISTRY_KEYS = [new, *settings.CONFIG_REGISTRY_KEYS]
    return new


@pytest.mark.django_db(transaction=True)
def test_sqlite_file__after_publish_and_rotation__holds_no_plaintext(sqlite_only, planted, settings):
    layer, plaintexts = planted
    database = _sqlite_bytes()
    assert b"visible" in database  # the inspection does see committed data
    assert not [p for p in plaintexts if p.encode() in database]
    new = _rotate_to_new_key(settings)
    call_command("rotate_keys")
    settings.CONFIG_REGISTRY_KEYS = [new]
    assert not [p for p in plaintexts if p.encode() in _sqlite_bytes()]
    assert version_states(layer, 1)["db.password"].value == plaintexts[0]


@pytest.mark.django_db(transaction=True)
def test_postgres_dump__after_publish_and_rotation__holds_no_plaintext(postgres_only, planted, settings):
    layer, plaintexts = planted
    dump = _pg_dump()
    assert b"visible" in dump
    assert not [p for p in plaintexts if p.encode() in dump]
    new = _rotate_to_new_key(settings)
    call_command("rotate_keys")
    settings.CONFIG_REGISTRY_KEYS = [new]
    assert not [p for p in plaintexts if p.encode() in _pg_dump()]
    assert version_states(layer, 2)["db.password"].value == plaintexts[1]


def test_export__default__secrets_stay_ciphertext(planted, actor):
    _, plaintexts = planted
    text = json.dumps(registry_export(actor=actor))
    assert "visible" in text and not [p for p in plaintexts if p in text]


def test_export__decrypt_secrets_asked__plaintext_and_audited(planted, actor):
    _, plaintexts = planted
    data = registry_export(decrypt_secrets=True, actor=actor)
    versions = data["layers"][0]["versions"]
    assert [v["secrets"]["db.password"] for v in versions] == plaintexts
    assert data["secrets"] == "plaintext"


def test_rotate_keys__old_key_removed_afterwards__every_secret_still_decrypts(planted, settings, capsys):
    layer, plaintexts = planted
    new = _rotate_to_new_key(settings)
    call_command("rotate_keys")
    assert "Re-encrypted 2 secret(s) under the primary key; 0 already were." in capsys.readouterr().out
    settings.CONFIG_REGISTRY_KEYS = [new]
    assert [version_states(layer, n)["db.password"].value for n in (1, 2)] == plaintexts
    call_command("rotate_keys")
    assert "Re-encrypted 0 secret(s) under the primary key; 2 already were." in capsys.readouterr().out


def test_rotate_keys__unreadable_value__reported_by_place_and_kept(planted, settings, capsys):
    layer, plaintexts = planted
    victim = Entry.objects.get(version__number=1, key="db.password")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Entry._meta.db_table} SET ciphertext = %s WHERE id = %s", ["garbage", victim.pk])
    _rotate_to_new_key(settings)
    with pytest.raises(CommandError, match="1 secret\\(s\\) could not be decrypted"):
        call_command("rotate_keys")
    captured = capsys.readouterr()
    assert "Re-encrypted 1 secret(s)" in captured.out
    assert "UNREADABLE: cannot decrypt secret 'db.password' in layer global version 1" in captured.err
    assert Entry.objects.get(pk=victim.pk).ciphertext == "garbage"  # left exactly as it was
    assert version_states(layer, 2)["db.password"].value == plaintexts[1]


def test_keys_rotate__audited_with_counts(planted, settings):
    from config_registry.models import AuditEvent

    _rotate_to_new_key(settings)
    keys_rotate(actor=Actor("cli", "manage.py"))
    event = AuditEvent.objects.order_by("seq").last()
    assert (event.action, event.changes["rewritten"], event.changes["unreadable"]) == ("keys.rotate", 2, [])


def test_audit_log__never_holds_secret_plaintext(planted):
    from config_registry.models import AuditEvent

    _, plaintexts = planted
    text = json.dumps(list(AuditEvent.objects.values_list("changes", flat=True)))
    assert "visible" in text and not [p for p in plaintexts if p in text]
