"""The client's CLI (python -m config_registry_client) against a live uvicorn: resolve, get, layers,
publish, diff, and `exec`, which runs a program with its configuration as environment variables,
restarts it when a publish changes them and passes signals on."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading

import pytest

from config_registry.selectors import layer_get
from config_registry.services import version_publish

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 30  # seconds an expected line may take before the test fails (it normally takes well under one)
CHILD = """
import os, signal, sys
signal.signal(signal.SIGHUP, lambda *_: print("hup", flush=True))
signal.signal(signal.SIGTERM, lambda *_: (print("term", flush=True), sys.exit(0)))
print("start", os.environ["CHAT_MAX"], os.environ["APP_TITLE"], os.environ["DB_PASSWORD"], flush=True)
while True:
    signal.pause()
"""


@pytest.fixture
def registry(make_layer):
    make_layer("global", {"chat.max": 3, "db.password": "hunter2"}, secrets=["db.password"])
    make_layer("service:chat", {"chat.title": "Lobby"})


def _cli(asgi_server: str, token: str, *arguments: str, **popen) -> subprocess.CompletedProcess:
    environment = {**os.environ, "CONFIG_REGISTRY_URL": f"http://{asgi_server}", "CONFIG_REGISTRY_TOKEN": token}
    command = [sys.executable, "-m", "config_registry_client", *arguments]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)


CONTEXT = ("-e", "production", "-s", "chat")


def test_cli__resolve_get_layers_publish_diff(registry, asgi_server, make_token):
    token = make_token("config:read", "config:write", "secrets:read")
    resolved = _cli(asgi_server, token, "resolve", *CONTEXT)
    assert resolved.returncode == 0, resolved.stderr
    answer = json.loads(resolved.stdout)
    assert answer["values"] == {"chat.max": 3, "chat.title": "Lobby", "db.password": "hunter2"}
    assert answer["stale"] is False
    assert _cli(asgi_server, token, "get", "chat.title", *CONTEXT).stdout == "Lobby\n"
    assert _cli(asgi_server, token, "get", "chat.max", *CONTEXT).stdout == "3\n"
    missing = _cli(asgi_server, token, "get", "nope", *CONTEXT)
    assert missing.returncode == 1 and "no key 'nope'" in missing.stderr
    assert "service:chat" in _cli(asgi_server, token, "layers").stdout

    published = _cli(asgi_server, token, "publish", "service:chat", "--set", "chat.max=5", "--set", "chat.title=Hall")
    assert published.returncode != 0 and "--base" in published.stderr  # the base is required
    published = _cli(
        asgi_server, token, "publish", "service:chat", "--base", "1", "--set", "chat.max=5", "--set", "api.key=s3"
    )
    assert published.returncode == 0, published.stderr
    assert "version 2" in published.stdout
    layer = layer_get("service:chat")
    assert layer.current_version == 2
    stale = _cli(asgi_server, token, "publish", "service:chat", "--base", "1", "--set", "chat.max=6")
    assert stale.returncode == 2 and "409" in stale.stderr and "version_conflict" in stale.stderr
    diff = json.loads(_cli(asgi_server, token, "diff", "service:chat", "--from", "1", "--to", "2").stdout)
    assert set(diff["added"]) == {"chat.max", "api.key"} and not diff["changed"] and not diff["removed"]


def test_cli__token_problems__said_without_the_token(registry, asgi_server, make_token, tmp_path):
    refused = _cli(asgi_server, "crt_secret-looking-token", "resolve", *CONTEXT)
    assert refused.returncode == 2 and "401" in refused.stderr
    assert "crt_secret-looking-token" not in refused.stderr + refused.stdout
    absent = _cli(asgi_server, "", "resolve", *CONTEXT)
    assert absent.returncode == 2 and "no service token in $CONFIG_REGISTRY_TOKEN" in absent.stderr
    token_file = tmp_path / "token"
    token_file.write_text(make_token("config:read") + "\n")
    from_file = _cli(asgi_server, "", "get", "chat.title", *CONTEXT, "--token-file", str(token_file))
    assert from_file.stdout == "Lobby\n"


def test_cli_exec__restarts_the_child_on_a_change_and_passes_signals_on(registry, asgi_server, make_token, actor):
    token = make_token("config:read", "secrets:read")
    environment = {**os.environ, "CONFIG_REGISTRY_URL": f"http://{asgi_server}", "CONFIG_REGISTRY_TOKEN": token}
    command = [
        sys.executable, "-m", "config_registry_client", "exec", *CONTEXT,
        "--map", "chat.title=APP_TITLE", "--grace", "5", "--", sys.executable, "-c", CHILD,
    ]  # fmt: skip
    supervisor = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line.strip()) for line in supervisor.stdout], daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=WAIT) == "start 3 Lobby hunter2"
        layer = layer_get("global")
        version_publish(layer=layer, base_version=1, set_={"chat.max": 4}, actor=actor)
        assert lines.get(timeout=WAIT) == "term"  # the old child was asked to stop …
        assert lines.get(timeout=WAIT) == "start 4 Lobby hunter2"  # … and a new one has the new value
        supervisor.send_signal(signal.SIGHUP)
        assert lines.get(timeout=WAIT) == "hup"  # passed on; the child keeps running
        supervisor.send_signal(signal.SIGTERM)
        assert lines.get(timeout=WAIT) == "term"
        assert supervisor.wait(timeout=WAIT) == 0  # exec ends with its child's code
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        reader.join(timeout=WAIT)
    assert token not in supervisor.stderr.read()
