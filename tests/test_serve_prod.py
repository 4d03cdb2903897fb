"""`make serve-prod` as the README's deployment section runs it: the production profile on
PostgreSQL and Redis, gunicorn for HTTP and uvicorn for WebSockets on their two ports, as the
reverse proxy in front of them would use them; and everything it started stops with it."""

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from .conftest import _database_url, database_is_postgres

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "chat.signing_keys"
WS_WORKERS = 2
BEHIND_THE_PROXY = {"X-Forwarded-Proto": "https", "Host": "127.0.0.1"}  # TLS ends at the proxy


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _running_in_group(group: int) -> list[str]:
    """Processes of the process group that have not exited (zombies have, whoever reaps them)."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:  # gone meanwhile
            continue
        name, fields = rest.rsplit(") ", 1)
        state, _, pgrp = fields.split()[:3]
        if int(pgrp) == group and state != "Z":
            running.append(f"{pid} {name} {state}")
    return running


class ServeProd:
    """`make serve-prod` in its own process group; lines of its output as they come."""

    def __init__(self, env: dict[str, str], http_port: int, ws_port: int):
        self.process = subprocess.Popen(
            [
                "make",
                "--no-print-directory",
                "serve-prod",
                "HOST=127.0.0.1",
                f"PORT={http_port}",
                f"WS_PORT={ws_port}",
                "HTTP_WORKERS=2",
                f"WS_WORKERS={WS_WORKERS}",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            start_new_session=True,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, markers: dict[str, int], timeout: float = 120) -> None:
        """Until each marker has appeared in as many lines of the output as it asks for."""
        missing = Counter(markers)
        while +missing:
            line = self.lines.get(timeout=timeout)
            assert line is not None, "make serve-prod ended:\n" + "".join(self.output)
            for marker in missing:
                if marker in line:
                    missing[marker] -= 1

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)  # as Ctrl-C or a supervisor would
        self.process.wait(timeout=60)
        self._reader.join(timeout=60)


@pytest.fixture
def production(make_user, make_layer, make_token, tmp_path):
    if not (database_is_postgres() and settings.REDIS_URL):
        pytest.skip(
            "needs PostgreSQL and Redis: run with DATABASE_URL=postgres://… and REDIS_URL=redis://… "
            "(the production layout runs on them)"
        )
    make_user("alice")
    make_layer("global", {KEY: ["k" * 43], "chat.max_message_length": 500}, secrets=[KEY])
    token = make_token("chat:ticket", "config:read", "metrics:read")
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DEBUG": "false",
        "DJANGO_SECRET_KEY": "k" + "x7Q2" * 16,
        "ALLOWED_HOSTS": "127.0.0.1",
        "CONFIG_REGISTRY_KEYS": ",".join(settings.CONFIG_REGISTRY_KEYS),
        "TRUST_X_FORWARDED_PROTO": "true",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    return env, token


def _http(method: str, url: str, headers: dict, body: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(
        url, method=method, headers=headers, data=json.dumps(body).encode() if body is not None else None
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def _metrics(http: str, token: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    _, _, body = _http("GET", f"{http}/metrics", BEHIND_THE_PROXY | {"Authorization": f"Bearer {token}"})
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_serve_prod__http_and_websockets_on_their_ports__and_all_of_it_stops(production):
    import websockets

    env, token = production
    http_port, ws_port = _free_port(), _free_port()
    served = ServeProd(env, http_port, ws_port)
    try:
        # gunicorn's workers each bind their own socket (reuse_port) and say so; uvicorn's workers each
        # listen once they have loaded the application, right after saying so.
        served.wait_for(
            {
                f"listening at: http://127.0.0.1:{http_port}": 2,
                "Started server process": WS_WORKERS,
                "applying due change requests": 1,  # the scheduler runs beside the servers
            }
        )
        http = f"http://127.0.0.1:{http_port}"

        status, headers, body = _http("GET", f"{http}/readyz", BEHIND_THE_PROXY)
        assert status == 200 and json.loads(body)["status"] == "ready"
        assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert headers["X-Content-Type-Options"] == "nosniff"
        status, headers, body = _http("GET", f"{http}/static/admin/css/base.css", BEHIND_THE_PROXY)
        assert status == 200 and headers["Content-Type"].startswith("text/css") and body  # collected, served

        _, _, body = _http(
            "POST",
            f"{http}/api/v1/chat/ticket",
            BEHIND_THE_PROXY | {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            {"user": "alice"},
        )
        ticket = json.loads(body)["ticket"]

        async def chat():
            async with websockets.connect(
                f"ws://127.0.0.1:{ws_port}/ws/chat/lobby/?ticket={ticket}", origin="http://127.0.0.1", open_timeout=60
            ) as ws:
                frames = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(2)]
                assert [frame["type"] for frame in frames] == ["history", "config"]
                assert frames[1]["values"]["chat.max_message_length"] == 500
                await ws.send(json.dumps({"type": "message", "text": "served in production"}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 30))["text"] == "served in production"
                return _metrics(http, token)  # while the chat socket is open, in a uvicorn worker

        metrics = asyncio.run(chat())
        # Summed over every process of the serving (gunicorn's two workers, uvicorn's two).
        assert metrics[("config_registry_websockets", (("kind", "chat"),))] == 1
        readyz = ("config_registry_http_requests_total", (("code", "200"), ("endpoint", "readyz"), ("method", "GET")))
        assert metrics[readyz] >= 1
    finally:
        served.stop()
    assert _running_in_group(served.process.pid) == []  # nothing it started is left running
    assert "Traceback" not in "".join(served.output)
