"""Management commands as an operator uses them."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from config_registry.models import AuditEvent, Layer, ServiceToken
from config_registry.security import security_secret
from config_registry.selectors import TokenRejected, token_authenticate, version_states
from config_registry.services import token_create, token_revoke, version_publish


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_service_token__prints_only_the_token__which_authenticates(db):
    printed = _run(
        "create_service_token",
        "deploy-bot",
        "--scopes",
        "config:read,secrets:read",
        "--environments",
        "production",
        "--services",
        "chat,billing",
        "--expires-in-days",
        "30",
    )
    raw = printed.strip()
    assert printed == raw + "\n" and raw.startswith("crt_") and " " not in raw
    token = token_authenticate(raw)
    assert (token.name, token.scopes, token.environments, token.services) == (
        "deploy-bot",
        ["config:read", "secrets:read"],
        ["production"],
        ["billing", "chat"],
    )
    assert token.token_hash != raw and raw not in json.dumps(list(ServiceToken.objects.values()), default=str)
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)


@pytest.mark.parametrize(
    "args, message",
    [
        (["x", "--scopes", "config:read,root"], "unknown scope(s) root"),
        (["Bad Name", "--scopes", "config:read"], "name: use lowercase"),
        (["x", "--scopes", "config:read", "--expires-in-days", "0"], "positive number of days"),
    ],
)
def test_create_service_token__bad_input__clear_error_and_nothing_created(db, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("create_service_token", *args)
    assert not ServiceToken.objects.exists()


def test_token_authenticate__unknown_revoked_expired__each_refused_with_reason(db, actor):
    token, raw = token_create(name="ci", scopes=["config:read"], actor=actor)
    assert token_authenticate(raw) == token
    with pytest.raises(TokenRejected, match="invalid service token"):
        token_authenticate(raw + "x")
    token_revoke(token=token, actor=actor)
    with pytest.raises(TokenRejected, match="'ci' was revoked"):
        token_authenticate(raw)
    expiring, raw2 = token_create(
        name="short", scopes=["config:read"], actor=actor, expires_at=timezone.now() + timedelta(seconds=30)
    )
    expiring.expires_at = timezone.now() - timedelta(seconds=1)
    expiring.save(update_fields=["expires_at"])
    with pytest.raises(TokenRejected, match="'short' expired"):
        token_authenticate(raw2)


def test_resolve_config__explain__json_with_provenance_and_masked_secrets(make_layer, make_user):
    make_user("alice")
    make_layer("global", {"a": 1, "s": "secret-value"}, secrets=["s"])
    make_layer("user:alice", {"a": 2})
    answer = json.loads(
        _run("resolve_config", "--environment", "dev", "--service", "chat", "--user", "alice", "--explain")
    )
    assert answer["values"] == {"a": 2, "s": "********"}
    assert answer["provenance"]["a"] == {
        "layer": "user:alice",
        "version": 1,
        "overrides": [{"layer": "global", "version": 1}],
    }
    revealed = json.loads(
        _run("resolve_config", "--environment", "dev", "--service", "chat", "--user", "alice", "--reveal-secrets")
    )
    assert revealed["values"]["s"] == "secret-value" and "provenance" not in revealed
    assert AuditEvent.objects.filter(action="secret.reveal", actor="cli").count() == 1
    with pytest.raises(CommandError, match="user 'zed' does not exist"):
        _run("resolve_config", "--environment", "dev", "--service", "chat", "--user", "zed")


@pytest.mark.django_db(transaction=True)
def test_export_then_import__into_an_empty_registry__same_history_secrets_encrypted(
    make_layer, make_user, actor, tmp_path
):
    make_user("alice")
    layer = make_layer("global", {"a": 1, "db.password": "pw-1"}, secrets=["db.password"])
    version_publish(layer=layer, base_version=1, set_={"db.password": "pw-2"}, unset=["a"], actor=actor)
    make_layer("user:alice", {"theme": "dark"})
    exported = tmp_path / "registry.json"
    call_command("export_config", "--output", str(exported))
    assert "pw-1" not in exported.read_text() and "pw-2" not in exported.read_text()

    call_command("flush", "--noinput")
    make_user("alice")  # user layers are imported only beside their user (issue #11)
    out = _run("import_config", str(exported))
    assert out.strip() == "Imported 2 layer(s), 3 version(s), 0 key definition(s)."
    restored = Layer.objects.get(level="global")
    assert restored.current_version == 2
    assert {k: s.value for k, s in version_states(restored, 1).items()} == {"a": 1, "db.password": "pw-1"}
    assert {k: s.value for k, s in version_states(restored, 2).items()} == {"db.password": "pw-2"}
    again = json.loads(_run("export_config"))
    original = json.loads(exported.read_text())
    for data in (again, original):
        for volatile in ("exported_at", "revision"):
            data.pop(volatile)
        for item in data["layers"]:
            for version in item["versions"]:
                version["secrets"] = sorted(version["secrets"])  # ciphertexts are re-encryptable, keys stay
    assert again == original


@pytest.mark.django_db(transaction=True)
def test_import_config__refusals__name_the_problem_and_write_nothing(make_layer, tmp_path, settings):
    make_layer("global", {"s": "v"}, secrets=["s"])
    exported = tmp_path / "registry.json"
    call_command("export_config", "--output", str(exported))
    with pytest.raises(CommandError, match="global: already exists here"):
        call_command("import_config", str(exported))

    call_command("flush", "--noinput")
    settings.CONFIG_REGISTRY_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="import with the same CONFIG_REGISTRY_KEYS as the source"):
        call_command("import_config", str(exported))
    assert not Layer.objects.exists()

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(CommandError, match="not a Config Registry export"):
        call_command("import_config", str(bad))
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_config", str(bad))
    assert not Layer.objects.exists()


def test_import_config__plaintext_export__secrets_encrypted_on_the_way_in(make_layer, actor, tmp_path):
    from config_registry.backup import registry_export, registry_import

    make_layer("global", {"s": "plain-in-file"}, secrets=["s"])
    data = registry_export(decrypt_secrets=True, actor=actor)
    data["layers"][0]["ref"] = "environment:copy"
    registry_import(data=data, actor=actor)
    copy = Layer.objects.get(level="environment", name="copy")
    assert version_states(copy, 1)["s"].value == "plain-in-file"
    from config_registry.models import Entry

    assert "plain-in-file" not in Entry.objects.get(version__layer=copy).ciphertext


def test_seed_demo__first_run_prints_credentials__second_run_creates_nothing(db):
    first = _run("seed_demo")
    assert "admin login:   admin / " in first and "service token: crt_" in first
    raw = first.split("service token: ")[1].split()[0]
    assert set(token_authenticate(raw).scopes) == {"config:read", "config:write", "audit:read", "chat:ticket"}
    keys = security_secret("chat.signing_keys")
    assert isinstance(keys, list) and len(keys) == 1 and len(keys[0]) >= 32
    assert set(Layer.objects.values_list("level", flat=True)) == {"global", "environment", "service", "group", "user"}
    layers = Layer.objects.count()
    second = _run("seed_demo")
    assert "already present" in second and "crt_" not in second
    assert Layer.objects.count() == layers
