"""Backups move a whole registry between SQLite and PostgreSQL with secrets still encrypted."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from config_registry.audit import Actor
from config_registry.backup import registry_export, registry_import
from config_registry.selectors import version_states
from config_registry.services import key_definition_save, version_publish

pytestmark = pytest.mark.django_db(transaction=True)
ACTOR = Actor("cli", "test", may_write_security=True)


def _manage(database_url: str, *args: str, stdin: str | None = None) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DATABASE_URL": database_url,
        "REDIS_URL": "",
        "CONFIG_REGISTRY_KEYS": ",".join(settings.CONFIG_REGISTRY_KEYS),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _comparable(export: dict) -> dict:
    export = json.loads(json.dumps(export, default=str))  # a copy
    for volatile in ("exported_at", "revision"):
        export.pop(volatile)
    for layer in export["layers"]:
        for version in layer["versions"]:
            version["secrets"] = sorted(version["secrets"])  # ciphertexts differ, keys must not
            version["created_at"] = version["created_at"][:19]
    return export


def test_export_import__postgresql_to_sqlite_and_back__same_registry_secrets_encrypted(
    postgres_only, make_layer, make_user, tmp_path
):
    make_user("alice")
    key_definition_save(key="chat.max_message_length", schema={"type": "integer"}, default=2000, actor=ACTOR)
    layer = make_layer(
        "global", {"chat.max_message_length": 100, "db.password": "pg-secret-1"}, secrets=["db.password"]
    )
    version_publish(layer=layer, base_version=1, set_={"db.password": "pg-secret-2"}, actor=ACTOR)
    make_layer("user:alice", {"theme": "dark"})
    original = registry_export(actor=ACTOR)
    assert "pg-secret" not in json.dumps(original)

    sqlite = f"sqlite:///{tmp_path / 'copy.sqlite3'}"
    _manage(sqlite, "migrate", "--noinput")
    _manage(sqlite, "import_config", "--allow-missing-users", "-", stdin=json.dumps(original))
    from_sqlite = json.loads(_manage(sqlite, "export_config"))
    assert "pg-secret" not in json.dumps(from_sqlite)
    assert _comparable(from_sqlite) == _comparable(original)

    # And back into an empty PostgreSQL registry: every version, secrets readable with the same keys.
    from django.core.management import call_command

    call_command("flush", "--noinput")
    make_user("alice")
    registry_import(data=from_sqlite | {"exported_at": "", "revision": 0}, actor=ACTOR)
    from config_registry.models import Layer

    restored = Layer.objects.get(level="global")
    assert restored.current_version == 2
    assert version_states(restored, 1)["db.password"].value == "pg-secret-1"
    assert version_states(restored, 2)["db.password"].value == "pg-secret-2"
