"""manage.py scan_env_reads (SPEC §10): every environment read of a codebase found in its syntax tree,
each read style on a fixture, the registry's keys matched, table and JSON, exit 1 while reads remain;
and on this project, none outside project/settings.py."""

import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from config_registry.envscan import scan

pytestmark = pytest.mark.django_db

STYLES = {
    "plain.py": """\
import os
A = os.environ["DATABASE_PASSWORD"]
B = os.environ.get("CHAT_MAX_MESSAGE_LENGTH", "500")
C = os.getenv("FEATURE_DARK_MODE")
D = "REDIS_URL" in os.environ
E = dict(os.environ)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
""",
    "aliases.py": """\
import os as system
from os import environ as env_map, getenv as fetch
A = system.environ["API_TOKEN"]
B = env_map.get("QUEUE_NAME")
C = fetch("LOG_LEVEL")
D = os_path = "not a read: os.environ in a string"
""",
    "django_environ.py": """\
import environ
from environ import Env
env = environ.Env(DEBUG=(bool, False))
environ.Env.read_env(".env")
DEBUG = env("DEBUG")
DB = env.db_url("DATABASE_URL")
other = Env()
HOSTS = other.list("ALLOWED_HOSTS")
""",
    "dot_env.py": """\
import dotenv
from dotenv import load_dotenv as load
load()
VALUES = dotenv.dotenv_values(".env")
""",
    "pydantic_settings.py": """\
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_")
    database_url: str
    api_key: str = Field(alias="PAYMENT_API_KEY")
    _private: int = 0

class Legacy(BaseSettings):
    timeout: int = 5

    class Config:
        env_prefix = "OLD_"

class NotSettings:
    ignored: str = "x"
""",
    "dynamic.py": """\
import os
NAME = "X"
A = os.environ[NAME]
""",
    "broken.py": "def (:\n",
}
EXPECTED = [
    ("aliases.py", 3, "API_TOKEN", "os.environ[…]"),
    ("aliases.py", 4, "QUEUE_NAME", "os.environ.get"),
    ("aliases.py", 5, "LOG_LEVEL", "os.getenv"),
    ("django_environ.py", 4, None, "environ.Env.read_env"),
    ("django_environ.py", 5, "DEBUG", "environ.Env"),
    ("django_environ.py", 6, "DATABASE_URL", "environ.Env.db_url"),
    ("django_environ.py", 8, "ALLOWED_HOSTS", "environ.Env.list"),
    ("dot_env.py", 3, None, "dotenv.load"),
    ("dot_env.py", 4, None, "dotenv.dotenv_values"),
    ("dynamic.py", 3, None, "os.environ[…]"),
    ("plain.py", 2, "DATABASE_PASSWORD", "os.environ[…]"),
    ("plain.py", 3, "CHAT_MAX_MESSAGE_LENGTH", "os.environ.get"),
    ("plain.py", 4, "FEATURE_DARK_MODE", "os.getenv"),
    ("plain.py", 5, "REDIS_URL", "os.environ (in)"),
    ("plain.py", 6, None, "os.environ"),
    ("plain.py", 7, "DJANGO_SETTINGS_MODULE", "os.environ.setdefault"),
    ("pydantic_settings.py", 6, "SHOP_DATABASE_URL", "pydantic Settings"),
    ("pydantic_settings.py", 7, "PAYMENT_API_KEY", "pydantic Settings"),
    ("pydantic_settings.py", 11, "OLD_TIMEOUT", "pydantic Legacy"),
]


@pytest.fixture
def codebase(tmp_path) -> Path:
    for name, text in STYLES.items():
        (tmp_path / "app" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "app" / name).write_text(text)
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "site.py").write_text("import os\nos.environ['HIDDEN']\n")  # never scanned
    return tmp_path


def _sorted(reads):
    return sorted(reads, key=lambda read: (read[0], read[1]))


def test_scan__every_read_style__file_line_variable_how(codebase):
    reads = [(read.path.name, read.line, read.variable, read.how) for read in scan(codebase / "app")]
    assert _sorted(reads) == _sorted(EXPECTED)


def _command(*arguments) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("scan_env_reads", *arguments, stdout=out)
    except SystemExit as exit_:
        return exit_.code, out.getvalue()
    return 0, out.getvalue()


def test_scan_env_reads__json__keys_matched_against_the_registry(codebase, make_layer):
    make_layer("global", {"chat.max_message_length": 500, "database.password": "x"}, secrets=["database.password"])
    code, out = _command(str(codebase / "app"), "--format", "json")
    answer = json.loads(out)
    assert code == 1 and answer["total"] == len(EXPECTED) - 1 and answer["django_settings_module"] == 1
    by_variable = {row["variable"]: row for row in answer["reads"] if row["variable"]}
    assert (
        by_variable["CHAT_MAX_MESSAGE_LENGTH"]["key"] == "chat.max_message_length"
    )  # mapped back as the registry has it
    assert by_variable["CHAT_MAX_MESSAGE_LENGTH"]["in_registry"] is True
    assert by_variable["DATABASE_PASSWORD"]["in_registry"] is True and answer["in_registry"] == 2
    assert (by_variable["QUEUE_NAME"]["key"], by_variable["QUEUE_NAME"]["in_registry"]) == ("queue.name", False)
    assert by_variable["QUEUE_NAME"]["file"] == "aliases.py" and by_variable["QUEUE_NAME"]["line"] == 4
    strict = json.loads(_command(str(codebase / "app"), "--format", "json", "--strict")[1])
    assert strict["total"] == len(EXPECTED)


def test_scan_env_reads__table__and_exit_0_once_none_remain(codebase, tmp_path):
    code, out = _command(str(codebase / "app"))
    assert code == 1
    assert "plain.py:2" in out and "DATABASE_PASSWORD" in out and "database.password" in out
    assert f"{len(EXPECTED) - 1} read(s) of the environment in 6 file(s)" in out
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "app.py").write_text("from registry import config\nVALUE = config.get('database.password')\n")
    assert _command(str(clean)) == (0, f"No read of the environment under {clean}: the migration is complete.\n")


def test_scan_env_reads__this_project__none_outside_its_settings():
    code, out = _command(settings.BASE_DIR, "--exclude", "tests", "--exclude", "bench", "--exclude", "clients",
                         "--format", "json")  # fmt: skip
    files = {row["file"] for row in json.loads(out)["reads"]}
    assert code == 1 and files == {"project/settings.py"}  # the bootstrap (SPEC §2), and nothing else
