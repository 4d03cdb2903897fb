"""Several server processes share PostgreSQL and Redis: a publish through one is seen by the
next resolve through another, and pushed to the watch sockets that other one holds."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config_registry.models import Layer

ROOT = Path(settings.BASE_DIR)
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shared_services(postgres_only):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://… (the shared channel layer and cache)")


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def two_servers(shared_services):
    """Two uvicorn processes on free ports, on the test database; stopped at the end."""
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "CONFIG_REGISTRY_KEYS": ",".join(settings.CONFIG_REGISTRY_KEYS),
           "DJANGO_SECRET_KEY": settings.SECRET_KEY, "LOG_LEVEL": "WARNING"}
    processes, addresses = [], []
    try:
        for _ in range(2):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)  # connections wait in the backlog until uvicorn has started
            addresses.append(f"127.0.0.1:{sock.getsockname()[1]}")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "project.asgi:application", "--fd", str(sock.fileno()),
                 "--lifespan", "off", "--log-level", "warning"],
                cwd=ROOT, env=env, pass_fds=[sock.fileno()]))
            sock.close()
        yield addresses
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def _http(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_publish_through_one_process__seen_and_pushed_by_the_other(two_servers, make_layer, make_token):
    import websockets

    make_layer("global", {"feature.flag": False})
    token = make_token("config:read", "config:write")
    first, second = two_servers
    resolve = f"http://{second}/api/v1/resolve?environment=prod&service=chat"

    async def scenario():
        async with websockets.connect(f"ws://{second}/ws/config/?environment=prod&service=chat",
                                      additional_headers={"Authorization": f"Bearer {token}"},
                                      open_timeout=60) as watch:
            initial = json.loads(await asyncio.wait_for(watch.recv(), 30))
            assert initial["values"] == {"feature.flag": False}
            assert (await asyncio.to_thread(_http, "GET", resolve, token))[1]["values"] == {"feature.flag": False}

            status, version = await asyncio.to_thread(
                _http, "POST", f"http://{first}/api/v1/layers/global/versions", token,
                {"base_version": 1, "set": {"feature.flag": True}})
            assert (status, version["version"]) == (201, 2)

            answer = (await asyncio.to_thread(_http, "GET", resolve, token))[1]
            assert answer["values"] == {"feature.flag": True} and answer["revision"] > initial["revision"]
            pushed = json.loads(await asyncio.wait_for(watch.recv(), 30))
            assert (pushed["values"], pushed["revision"]) == ({"feature.flag": True}, answer["revision"])

    asyncio.run(scenario())
    assert Layer.objects.get(level="global").current_version == 2
