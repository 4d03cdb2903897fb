"""The README's shell examples work when pasted: every block marked `<!-- readme-test … -->` runs, in order,
with bash -euo pipefail, against a live server on a database seeded as `make run` seeds it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.conftest import _database_url

pytestmark = pytest.mark.django_db(transaction=True)
README = Path(settings.BASE_DIR) / "README.md"
MARKED = re.compile(r"<!-- readme-test[^>]*-->\n```sh\n(.*?)\n```", re.S)


def test_readme__marked_shell_blocks__run_against_a_fresh_make_run(server_processes, tmp_path):
    blocks = MARKED.findall(README.read_text())
    assert blocks, "no block of the README is marked for this test"
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115 — as make run does
    address, log = server_processes()
    script = tmp_path / "readme.sh"
    # The test's interpreter is the venv's (make test runs it): the same as the README's .venv/bin/python.
    script.write_text("set -euo pipefail\n" + "\n".join(blocks).replace(".venv/bin/python", sys.executable))
    environment = {
        **os.environ,
        "PORT": address.rsplit(":", 1)[1],
        "DATABASE_URL": _database_url(),
        "CONFIG_REGISTRY_KEYS": ",".join(settings.CONFIG_REGISTRY_KEYS),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
    }
    run = subprocess.run(
        ["bash", str(script)], cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, f"{run.stderr[-3000:]}\n--- server log ---\n{log.read_text()[-2000:]}"
    out = run.stdout
    assert '"context":{"environment":"development","service":"chat","user":"alice"}' in out
    assert "warning: 299 config-registry" in out.lower() and "did you mean 'production'?" in out
    assert "}304\n" in out  # the conditional GET with the real ETag (after a JSON answer without a newline)
    assert '"rolled_back_from":1' in out  # the rollback had the version 2 it is based on
    assert '"error"' not in out
