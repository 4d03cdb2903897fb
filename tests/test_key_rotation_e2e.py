"""The key rotation runbook (README, "Key rotation"), end to end with real server processes: a new
Fernet key first, rolling restarts, rotate_keys, the old key removed, rolling restarts again; at
every step a process answers with the right secrets, and nothing ends up unreadable."""

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from .conftest import _database_url

pytestmark = pytest.mark.django_db(transaction=True)


def _get(address: str, path: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://{address}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _publish(address: str, token: str, base: int, values: dict) -> int:
    request = urllib.request.Request(
        f"http://{address}/api/v1/layers/global/versions",
        method="POST",
        data=json.dumps({"base_version": base, "set": values, "secrets": list(values)}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def _rotate_keys(keys: list[str]) -> subprocess.CompletedProcess:
    env = {
        "DATABASE_URL": _database_url(),
        "CONFIG_REGISTRY_KEYS": ",".join(keys),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "rotate_keys"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rotation_runbook__rolling_restarts__every_step_answered_nothing_unreadable(
    server_processes, make_layer, make_token, registry_keys
):
    old, new = registry_keys[0], Fernet.generate_key().decode()
    make_layer("global", {"db.password": "first"}, secrets=["db.password"])  # version 1, under the old key
    token = make_token("config:read", "config:write", "secrets:read")
    expected = {"password": "first"}

    def answers_right(address: str) -> bool:
        status, body = _get(address, "/api/v1/resolve?environment=prod&service=chat", token)
        return status == 200 and body["values"] == {"db.password": expected["password"]}

    def roll(processes: list[str], keys: list[str]) -> list[str]:
        """Restart the processes one at a time with `keys`; the others answer meanwhile."""
        for index, address in enumerate(list(processes)):
            server_processes.stop(address)
            assert all(answers_right(other) for other in processes if other != address)
            processes[index] = server_processes(keys=keys)[0]
            assert answers_right(processes[index])
        return processes

    processes = [server_processes(keys=[old])[0], server_processes(keys=[old])[0]]
    assert all(answers_right(address) for address in processes)

    # 1. The new key first, the old one kept: both decrypt, the new one encrypts.
    processes = roll(processes, [new, old])
    assert _publish(processes[0], token, 1, {"db.password": "second"}) == 201  # under the new key
    expected["password"] = "second"
    assert all(answers_right(address) for address in processes)

    # 2. Re-encrypt everything (every version) under the new key.
    rotated = _rotate_keys([new, old])
    assert rotated.returncode == 0, rotated.stderr
    assert "Re-encrypted 1 secret(s)" in rotated.stdout and "1 already were" in rotated.stdout

    # 3. The old key removed: every process still answers, old versions included.
    processes = roll(processes, [new])
    assert all(answers_right(address) for address in processes)
    status, version_1 = _get(processes[1], "/api/v1/layers/global/versions/1", token)
    assert status == 200 and version_1["entries"]["db.password"] == "first"
    again = _rotate_keys([new])
    assert again.returncode == 0 and "Re-encrypted 0 secret(s)" in again.stdout and "UNREADABLE" not in again.stderr
