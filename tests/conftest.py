"""Shared fixtures: actors, users and groups, layers, fresh encryption keys, a real ASGI server."""

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import connection
from hypothesis import settings as hypothesis_settings

from chat.consumers import HISTORIES
from config_registry.audit import Actor
from config_registry.memory import memos_clear
from config_registry.models import Layer
from config_registry.ratelimit import tallies_clear
from config_registry.services import layer_create, token_create, version_publish
from config_registry.state import state_clear

# Playwright's sync API keeps an event loop in the test thread; the tests' own database set-up
# and teardown are not async code, so tell Django not to refuse them (tests only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Deterministic property tests: the same examples every run, no timing-based failures.
hypothesis_settings.register_profile("registry", deadline=None, derandomize=True, max_examples=200)
hypothesis_settings.load_profile("registry")


def database_is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def postgres_only():
    """Skip (with the reason) unless the suite runs on PostgreSQL (DATABASE_URL=postgres://…)."""
    if not database_is_postgres():
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://… (real row locks and pg_dump)")


@pytest.fixture
def sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("inspects the bytes of the SQLite file; runs in the embedded configuration")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty shared cache, and this process forgets what it remembered
    of earlier tests' databases (positions, tokens, answers, rate-limit tallies)."""
    cache.clear()
    memos_clear()
    state_clear()
    tallies_clear()
    HISTORIES.clear()


@pytest.fixture(autouse=True)
def _fresh_channel_layers():
    """Each test (and its event loop) gets new channel layer instances."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def registry_keys(settings) -> list[str]:
    """Every test gets its own primary Fernet key; tests that rotate change the setting."""
    settings.CONFIG_REGISTRY_KEYS = [Fernet.generate_key().decode()]
    return settings.CONFIG_REGISTRY_KEYS


@pytest.fixture
def actor() -> Actor:
    return Actor("admin:tester", "127.0.0.1", may_write_security=True)


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(username: str, *groups: str) -> User:
        user = User.objects.create_user(username, password="pw-" + username)
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        return user

    return make


@pytest.fixture
def make_layer(db, actor) -> Callable[..., Layer]:
    """make_layer("global", {"a": 1}, secrets=["b"]) creates the layer and publishes version 1."""

    def make(ref: str, values: dict | None = None, *, secrets=(), priority: int = 0) -> Layer:
        layer = layer_create(ref=ref, priority=priority, actor=actor)
        if values:
            version_publish(layer=layer, base_version=0, set_=values, secrets=secrets, actor=actor)
            layer.refresh_from_db()
        return layer

    return make


@pytest.fixture
def make_token(db, actor) -> Callable[..., str]:
    """make_token("config:read", environments=["prod"]) -> the raw bearer token."""

    def make(*scopes: str, environments=(), services=(), name: str | None = None) -> str:
        _, raw = token_create(
            name=name or f"token-{len(make.made)}",
            scopes=scopes,
            environments=environments,
            services=services,
            actor=actor,
        )
        make.made.append(raw)
        return raw

    make.made = []
    return make


@pytest.fixture
def database_cursor_fails(monkeypatch):
    """Every cursor of the default connection fails as an unreachable server's would (health probes)."""
    from django.db import DatabaseError, connection

    class BrokenCursor:
        def __enter__(self):
            raise DatabaseError("could not connect to server")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(connection, "cursor", lambda: BrokenCursor())


@pytest.fixture
def api():
    """DRF's test client; call api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}") to authenticate."""
    from rest_framework.test import APIClient

    return APIClient()


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class ServerProcesses:
    """Real `uvicorn project.asgi:application` processes on the test database."""

    def __init__(self, settings, tmp_path: Path):
        self._settings, self._tmp_path, self._started = settings, tmp_path, {}

    def __call__(
        self, redis_url: str | None = None, keys: list[str] | None = None, environment: dict[str, str] | None = None
    ) -> tuple[str, Path]:
        """Start one on a free port (with REDIS_URL, if set, or the one given; with the test's
        Fernet keys, or the ones given; with more `environment`); returns (address, log file)."""
        import subprocess
        import sys

        settings = self._settings
        env = {
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL if redis_url is None else redis_url,
            "CONFIG_REGISTRY_KEYS": ",".join(keys or settings.CONFIG_REGISTRY_KEYS),
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "LOG_LEVEL": "INFO",
            **(environment or {}),
        }
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)  # connections wait in the backlog until uvicorn has started
        log = self._tmp_path / f"server-{len(self._started)}.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "project.asgi:application",
                    "--fd",
                    str(sock.fileno()),
                    "--lifespan",
                    "off",
                    "--ws",
                    "wsproto",
                    "--ws-max-size",
                    "65536",
                    "--timeout-graceful-shutdown",
                    "5",
                ],
                cwd=settings.BASE_DIR,
                env=env,
                pass_fds=[sock.fileno()],
                stdout=output,
                stderr=output,
            )
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        self._started[address] = process
        sock.close()
        return address, log

    def stop(self, address: str) -> None:
        process = self._started.pop(address)
        process.terminate()
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self._started.values():
            process.terminate()
        for process in self._started.values():
            process.wait(timeout=30)
        self._started.clear()


@pytest.fixture
def server_processes(transactional_db, settings, tmp_path):
    """Call it to start a server process (see ServerProcesses); all are stopped at the end."""
    servers = ServerProcesses(settings, tmp_path)
    yield servers
    servers.stop_all()


class UvicornThread:
    """The real ASGI application under uvicorn in a thread, on a port of its own that survives a restart."""

    def __init__(self):
        self.port = 0
        self._server = self._thread = self._sock = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "UvicornThread":
        import uvicorn

        from project.asgi import application

        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the same port again after a stop
        self._sock.bind(("127.0.0.1", self.port))  # 0 the first time: the kernel picks a free port
        self._sock.listen(128)  # connections queue until uvicorn accepts
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(
                application,
                lifespan="off",
                log_level="warning",
                http="h11",  # as `make serve`: httptools refuses Vault's LIST method before Django sees it
                ws="wsproto",
                ws_max_size=65536,
                timeout_graceful_shutdown=5,
            )
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()
        alive, self._thread = self._thread.is_alive(), None
        assert not alive, "uvicorn did not stop"


@pytest.fixture
def asgi_server(transactional_db) -> Iterator[str]:
    """The real ASGI application under uvicorn on a free port; yields its address, then stops it."""
    server = UvicornThread().start()
    try:
        yield server.address
    finally:
        server.stop()


@pytest.fixture
def restartable_server(transactional_db) -> Iterator[UvicornThread]:
    """As asgi_server, but the test may stop() and start() it again on the same port."""
    server = UvicornThread().start()
    try:
        yield server
    finally:
        server.stop()


CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"  # git-ignored


@pytest.fixture
def chromium():
    """Debian's Chromium driven by Playwright (never a downloaded browser); skips where it is absent."""
    import shutil

    if not shutil.which(CHROMIUM):
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()
