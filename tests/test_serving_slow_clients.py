"""The production HTTP serving (project/gunicorn.conf.py, as `make serve-prod` runs it) under slow
clients (issue #11): clients that send their request a byte at a time, or not at all, must not
keep anybody else from being served."""

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gunicorn(tmp_path):
    """gunicorn with the production settings, one worker of two threads (the fewest to hold)."""
    from tests.conftest import _database_url

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    log = tmp_path / "gunicorn.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CONFIG_REGISTRY_KEYS": ",".join(settings.CONFIG_REGISTRY_KEYS),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
    }
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "project/gunicorn.conf.py",
                "--workers",
                "1",
                "--threads",
                "2",
                "--bind",
                f"fd://{sock.fileno()}",
                "project.wsgi:application",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            pass_fds=[sock.fileno()],
            stdout=output,
            stderr=output,
        )
    port = sock.getsockname()[1]
    sock.close()
    try:
        _get(port, timeout=60)  # up: queued connections wait until the worker has loaded the app
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _get(port: int, timeout: float) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
        return response.status


def test_gunicorn__slow_clients_hold_connections__others_are_still_served(gunicorn, tmp_path):
    gunicorn_log = tmp_path / "gunicorn.log"
    slow = []
    try:
        for _ in range(2):  # as many as the worker has threads
            client = socket.create_connection(("127.0.0.1", gunicorn))
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and never the rest
            slow.append(client)
        silent = [socket.create_connection(("127.0.0.1", gunicorn)) for _ in range(2)]  # send nothing at all
        slow += silent
        started = time.monotonic()
        statuses = [_get(gunicorn, timeout=30) for _ in range(5)]
        assert statuses == [200] * 5
        assert time.monotonic() - started < 25  # a stalled client holds a thread at most 5 s
    finally:
        for client in slow:
            client.close()
    log = gunicorn_log.read_text()
    assert "Traceback" not in log and "dropped a client that sent nothing" in log


def test_gunicorn__vaults_list_method__reaches_django(gunicorn):
    # httptools (uvicorn's default parser) would refuse the method with a bare 400 before Django.
    request = urllib.request.Request(f"http://127.0.0.1:{gunicorn}/v1/layers/metadata/", method="LIST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    assert refused.value.headers["Content-Type"] == "application/json"
    assert refused.value.read() == b'{"errors": ["permission denied"]}'
