"""manage.py import_env (SPEC §10): a .env file into one new version of a layer, read as python-dotenv
reads it, with types, secrets detected by name and never printed, a dry run, and conflicts refused."""

import io

import pytest
from django.core.management import CommandError, call_command

from config_registry.envfile import env_plan, value_of
from config_registry.models import AuditEvent, Entry, Layer
from config_registry.selectors import layer_get, version_states

pytestmark = pytest.mark.django_db

DOTENV = """\
# the chat service, as it ran before the registry
export DATABASE_HOST=db.internal
DATABASE_PASSWORD="correct horse battery"
API_TOKEN=tok-123456 # a trailing comment
CHAT_MAX_MESSAGE_LENGTH=4000
FEATURE_DARK_MODE=true
RATIO=0.5
ZIP='007'
ROOMS=["lobby","ops"]
BANNER="line one
line two"
DATABASE_HOST=db2.internal
this line is not a binding
"""
PLAINTEXTS = ("correct horse battery", "tok-123456")


def _run(*arguments: str, text: str = DOTENV, tmp_path) -> tuple[str, str]:
    path = tmp_path / "service.env"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_env", str(path), *arguments, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_env__dotenv_constructs_types_and_secrets(make_layer, tmp_path):
    make_layer("service:chat", {"chat.max_message_length": 500})  # a known key: mapped back with its underscores
    out, err = _run("--layer", "environment:staging", tmp_path=tmp_path)
    layer = layer_get("environment:staging")
    states = version_states(layer, layer.current_version)
    assert {key: state.value for key, state in states.items()} == {
        "database.host": "db2.internal",  # the last of a duplicate wins, as in python-dotenv
        "database.password": "correct horse battery",
        "api.token": "tok-123456",
        "chat.max_message_length": 4000,
        "feature.dark.mode": True,  # a key nobody holds yet: every _ a dot (--map names another)
        "ratio": 0.5,
        "zip": "007",  # quoted: text
        "rooms": ["lobby", "ops"],
        "banner": "line one\nline two",
    }
    assert {key for key, state in states.items() if state.secret} == {"database.password", "api.token"}
    for entry in Entry.objects.filter(layer=layer, secret=True):
        assert all(plain not in (entry.ciphertext or "") for plain in PLAINTEXTS)
    assert "DATABASE_HOST is set on lines 2 and 12: the last one (line 12) is used" in err
    assert "line 13: not a NAME=value line, skipped" in err
    assert "database.password (secret, from DATABASE_PASSWORD): added" in out
    audit = AuditEvent.objects.filter(action="version.publish", target="environment:staging").get()
    for text in (out, err, str(audit.changes)):
        assert all(plain not in text for plain in PLAINTEXTS)


def test_import_env__dry_run__the_diff_with_secrets_only_as_changed(make_layer, tmp_path):
    make_layer(
        "environment:staging",
        {"database.password": "old password", "database.host": "db.internal", "feature.dark_mode": True},
        secrets=["database.password"],
    )
    out, _ = _run("--layer", "environment:staging", "--dry-run", tmp_path=tmp_path)
    assert layer_get("environment:staging").current_version == 1  # nothing published
    assert "~ database.password (secret, from DATABASE_PASSWORD): changed" in out
    assert "~ database.host (from DATABASE_HOST): 'db.internal' → 'db2.internal'" in out
    assert "+ rooms (from ROOMS) = ['lobby', 'ops']" in out and "1 unchanged" in out
    assert "Dry run: nothing published." in out
    assert all(plain not in out for plain in (*PLAINTEXTS, "old password"))
    same = 'DATABASE_PASSWORD="old password"\n'
    out, _ = _run("--layer", "environment:staging", "--dry-run", text=same, tmp_path=tmp_path)
    assert "1 unchanged" in out and "database.password" not in out  # an unchanged secret is not listed


def test_import_env__prefix_map_and_secret_names(tmp_path):
    text = "APP_DB_URL=postgres://x\nAPP_MODE=fast\nAPP_PIN=1234\nOTHER=ignored\n"
    _run("--layer", "global", "--prefix", "APP_", "--map", "APP_DB_URL=database.url", "--secret", "APP_PIN",
         text=text, tmp_path=tmp_path)  # fmt: skip
    states = version_states(layer_get("global"), 1)
    assert {key: state.value for key, state in states.items()} == {"database.url": "postgres://x", "mode": "fast",
                                                                   "pin": 1234}  # fmt: skip
    assert [key for key, state in states.items() if state.secret] == ["pin"]


def test_import_env__a_stale_base_or_a_bad_value__nothing_written(make_layer, actor, tmp_path):
    from config_registry.services import key_definition_save

    make_layer("environment:staging", {"database.host": "db.internal"})
    with pytest.raises(CommandError, match="at version 1, your change was based on 0.*--base 1"):
        _run("--layer", "environment:staging", "--base", "0", tmp_path=tmp_path)
    assert layer_get("environment:staging").current_version == 1
    key_definition_save(key="ratio", schema={"type": "integer"}, actor=actor)
    with pytest.raises(CommandError, match="ratio"):
        _run("--layer", "service:billing", tmp_path=tmp_path)
    assert not Layer.objects.filter(name="billing").exists()  # the refused import left no empty layer
    with pytest.raises(CommandError, match="group|user|layer"):
        _run("--layer", "nonsense", tmp_path=tmp_path)
    with pytest.raises(CommandError, match="holds no variable"):
        _run("--layer", "global", text="# nothing\n", tmp_path=tmp_path)


def test_env_plan__values_parsed_only_where_unambiguous():
    assert [value_of(text, quoted=False) for text in ("3", "-2", "3.50", "1e3", "007", "true", "True", "null")] == [
        3, -2, 3.5, "1e3", "007", True, "True", "null",
    ]  # fmt: skip
    assert value_of("3", quoted=True) == "3" and value_of("[1, 2", quoted=False) == "[1, 2"
    plan = env_plan("A_B=1\nA__B=2\n")
    assert plan.entries == {"a.b": 2} and "A_B and A__B both map to a.b" in plan.notes[0]
