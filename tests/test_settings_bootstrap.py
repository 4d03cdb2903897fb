"""Bootstrap: project/settings.py is the only environment reader, and keys fail loudly."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from config_registry.checks import find_environment_reads

ROOT = Path(settings.BASE_DIR)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_find_environment_reads__the_project__finds_none():
    assert find_environment_reads(ROOT) == []


@pytest.mark.parametrize(
    "source, code",
    [
        ("import os\nSECRET = os.environ['SERVICE_SECRET']\n", "os.environ[…]"),
        ("import os\nSECRET = os.getenv('SERVICE_SECRET')\n", "os.getenv"),
        ("import os as o\nSECRET = o.environ.get('SERVICE_SECRET')\n", "os.environ.get"),
        ("from os import environ\nSECRET = environ['SERVICE_SECRET']\n", "os.environ[…]"),
        ("from os import getenv as g\nSECRET = g('SERVICE_SECRET')\n", "os.getenv"),
        ("import environ\nenv = environ.Env()\nSECRET = env('SERVICE_SECRET')\n", "environ.Env"),
        ("import environ\nenv = environ.Env()\nSECRET = env.str('SERVICE_SECRET')\n", "environ.Env.str"),
    ],
)
def test_find_environment_reads__planted_read__named_with_file_and_line(tmp_path, source, code):
    root = _tree(tmp_path, {"project/settings.py": "import os\nos.environ\n", "chat/secret.py": "\n" + source})
    reads = find_environment_reads(root)
    assert [(str(r.path), r.how, r.variable) for r in reads] == [("chat/secret.py", code, "SERVICE_SECRET")]
    assert reads[0].line >= 2


SETTINGS_DEFAULT = 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")\n'


def test_find_environment_reads__django_settings_default_in_the_entry_points__allowed(tmp_path):
    root = _tree(
        tmp_path,
        {"manage.py": SETTINGS_DEFAULT, "project/asgi.py": SETTINGS_DEFAULT, "project/wsgi.py": SETTINGS_DEFAULT},
    )
    assert find_environment_reads(root) == []


@pytest.mark.parametrize(
    "path, source",
    [
        ("chat/app.py", SETTINGS_DEFAULT),  # the idiom, but not in an entry point
        ("manage.py", 'import os\nos.environ.setdefault("SERVICE_SECRET", "x")\n'),  # another variable
        ("manage.py", SETTINGS_DEFAULT + "SECRET = os.environ['SERVICE_SECRET']\n"),  # and a read besides
        ("project/wsgi.py", 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", os.getenv("X"))\n'),
    ],
)
def test_find_environment_reads__anything_beyond_the_settings_default__flagged(tmp_path, path, source):
    reads = find_environment_reads(_tree(tmp_path, {path: source}))
    assert reads and all(str(read.path) == path for read in reads)


def test_find_environment_reads__settings_tests_and_bench__are_allowed(tmp_path):
    root = _tree(
        tmp_path,
        {
            "project/settings.py": "import os\nos.environ\n",
            "tests/test_x.py": "import os\nos.environ\n",
            "bench/run.py": "import os\nos.getenv('X')\n",
            "chat/ok.py": "import os\npath = os.path.join('a', 'b')\n",
        },
    )
    assert find_environment_reads(root) == []


def test_manage_py_check__planted_read_in_chat__fails_naming_file_and_line():
    planted = ROOT / "chat" / "planted_environment_read.py"
    planted.write_text('"""Planted by a test."""\nimport os\n\nSECRET = os.environ.get("SERVICE_SECRET")\n')
    try:
        with pytest.raises(SystemCheckError) as raised:
            call_command("check")
    finally:
        planted.unlink()
    assert "config_registry.E001" in str(raised.value)
    assert "chat/planted_environment_read.py:4 reads the environment (os.environ.get SERVICE_SECRET)" in str(
        raised.value
    )
    call_command("check")  # and the project itself passes once the read is gone


def test_manage_py_check__subprocess__passes_on_the_project():
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def _settings_in_subprocess(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "CONFIG_REGISTRY_KEYS", "DEBUG")}
    return subprocess.run(
        [sys.executable, "-c", "import project.settings"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, **env},
    )


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "CONFIG_REGISTRY_KEYS"])
def test_settings__production_without_a_key__refuses_to_start_naming_it(missing):
    present = {"DJANGO_SECRET_KEY": "x" * 50, "CONFIG_REGISTRY_KEYS": "k"}
    present.pop(missing)
    result = _settings_in_subprocess(DEBUG="false", **present)
    assert result.returncode != 0
    assert f"{missing} is not set. With DEBUG=false it is required" in result.stderr


def test_development_secrets__generated_once__owner_only(tmp_path, monkeypatch):
    import project.settings as project_settings

    monkeypatch.setattr(project_settings, "VAR_DIR", tmp_path)
    first = project_settings._development_secrets()
    path = tmp_path / "development-secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert project_settings._development_secrets() == first
    assert set(first) == {"DJANGO_SECRET_KEY", "CONFIG_REGISTRY_KEYS"}


def test_gitignore__covers_the_generated_secrets():
    assert "var/" in (ROOT / ".gitignore").read_text().split()


def test_production_profile__check_deploy_passes_at_warning_level():
    from cryptography.fernet import Fernet

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SECRET_KEY", "CONFIG_REGISTRY_KEYS", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env.update(
        {
            "DEBUG": "false",
            "DJANGO_SECRET_KEY": "k" + "x7Q2" * 16,
            "ALLOWED_HOSTS": "registry.example.com",
            "CONFIG_REGISTRY_KEYS": Fernet.generate_key().decode(),
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
