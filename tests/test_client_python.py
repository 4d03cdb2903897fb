"""The Python client (clients/python, SPEC §10) against a live uvicorn over real sockets: the first read,
the 304 path, the watch's update after a publish, reconnecting after a server restart, starting from the
last-known-good file while the server is down, and typed reads that name the key and the type."""

import json
import queue
import stat

import pytest
from config_registry_client import ConfigTypeError, MissingKey, Registry, RegistryError, RegistryUnavailable
from cryptography.fernet import Fernet
from django.contrib.auth.models import User

from config_registry.selectors import layer_get
from config_registry.services import version_publish

pytestmark = pytest.mark.django_db(transaction=True)
QUICK = (0.05, 0.2)  # reconnect backoff bounds for tests: the same code path, shorter waits
WAIT = 10  # seconds an expected event may take before the test fails (it normally takes milliseconds)


@pytest.fixture
def registry(make_layer):
    User.objects.create(username="alice")
    make_layer("global", {"chat.max": 3, "db.password": "hunter2", "feature.dark_mode": False}, secrets=["db.password"])
    make_layer("service:chat", {"chat.title": "Lobby", "chat.rooms": ["a", "b"], "chat.ratio": 1.5})
    make_layer("user:alice", {"feature.dark_mode": True})


def _publish(ref: str, actor, **values):
    layer = layer_get(ref)
    version_publish(layer=layer, base_version=layer.current_version, set_=values, actor=actor)


def _changes(client: Registry) -> queue.Queue:
    changes: queue.Queue = queue.Queue()
    client.on_change(changes.put)
    return changes


def test_client__first_read_typed_reads_and_their_errors(registry, asgi_server, make_token):
    token = make_token("config:read", "secrets:read")
    with Registry(f"http://{asgi_server}", token, environment="production", service="chat", user="alice") as client:
        assert client.get_int("chat.max") == 3 and client.get_bool("feature.dark_mode") is True
        assert client.get_str("chat.title") == "Lobby" and client.get_list("chat.rooms") == ["a", "b"]
        assert client.get_float("chat.ratio") == 1.5 and client.get_float("chat.max") == 3.0
        assert client.get("db.password") == "hunter2" and client.secrets == {"db.password"}
        assert client.get("nope", "fallback") == "fallback" and client.get_int("nope", 7) == 7
        assert client.revision > 0 and client.values()["chat.title"] == "Lobby"
        with pytest.raises(ConfigTypeError, match=r"'chat.title' is str 'Lobby', not an integer"):
            client.get_int("chat.title")
        with pytest.raises(ConfigTypeError, match=r"'feature.dark_mode' is bool True, not an integer"):
            client.get_int("feature.dark_mode")  # a boolean is not an integer here
        with pytest.raises(ConfigTypeError, match=r"'db.password' is a secret, not an integer") as raised:
            client.get_int("db.password")
        assert "hunter2" not in str(raised.value)
        with pytest.raises(MissingKey, match=r"no key 'nope' in the configuration of environment=production"):
            client.get("nope")


def test_client__refusals_are_the_registrys_messages(registry, asgi_server, make_token):
    url = f"http://{asgi_server}"
    with pytest.raises(RegistryError, match="401") as raised:
        Registry(url, "crt_wrong", environment="production", service="chat", watch=False)
    assert raised.value.status == 401
    limited = make_token("config:read", environments=["staging"])
    with pytest.raises(RegistryError, match="limited to") as raised:
        Registry(url, limited, environment="production", service="chat", watch=False)
    assert raised.value.status == 403


def test_client__refresh_is_conditional__304_until_a_publish(registry, asgi_server, make_token, actor):
    token = make_token("config:read")
    client = Registry(f"http://{asgi_server}", token, environment="production", service="chat", watch=False)
    statuses = []
    request = client._http.request
    client._http.request = lambda *args, **kwargs: statuses.append(response := request(*args, **kwargs)) or response
    try:
        assert client.refresh() is False and client.refresh() is False
        assert [response.status for response in statuses] == [304, 304]
        assert client.get("db.password") == "********" and client.secrets == {"db.password"}
        assert not client.stale
        _publish("service:chat", actor, **{"chat.title": "Hall"})
        assert client.refresh() is True and client.get("chat.title") == "Hall"
        assert [response.status for response in statuses] == [304, 304, 200]
    finally:
        client.close()


def test_client__watch__a_publish_arrives_without_a_request(registry, asgi_server, make_token, actor):
    token = make_token("config:read")
    with Registry(f"http://{asgi_server}", token, environment="production", service="chat", user="alice") as client:
        changes = _changes(client)
        assert client.wait_connected(WAIT)
        requests = []
        client._http.request = lambda *args, **kwargs: requests.append(args)  # any request from now on is seen
        _publish("user:alice", actor, **{"chat.max": 9})
        change = changes.get(timeout=WAIT)
        assert change.changed == {"chat.max"} and change.values["chat.max"] == 9
        assert client.get("chat.max") == 9 and client.revision == change.revision
        assert requests == []  # served by the watch: no round trip
        assert client.status().watching and not client.stale


def test_client__watch__reconnects_after_the_server_restarts(registry, restartable_server, make_token, actor):
    token = make_token("config:read")
    url = f"http://{restartable_server.address}"
    with Registry(url, token, environment="production", service="chat", backoff=QUICK) as client:
        changes = _changes(client)
        assert client.wait_connected(WAIT)
        restartable_server.stop()
        assert client.wait_disconnected(WAIT)
        assert not client.status().watching and client.stale  # said so while the server is away
        _publish("service:chat", actor, **{"chat.title": "While away"})
        restartable_server.start()
        change = changes.get(timeout=WAIT)  # the server sends the values at once on reconnecting
        assert change.values["chat.title"] == "While away"
        assert client.wait_connected(WAIT) and not client.stale


def test_client__last_known_good__starts_stale_while_the_server_is_down(
    registry, restartable_server, make_token, tmp_path
):
    url = f"http://{restartable_server.address}"
    token = make_token("config:read", "secrets:read")
    key = Fernet.generate_key()
    saved = tmp_path / "lkg" / "chat.json"
    context = {"environment": "production", "service": "chat"}
    with Registry(url, token, **context, watch=False, last_known_good=saved, cache_key=key) as client:
        revision = client.revision
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert "hunter2" not in saved.read_text()  # the secret is encrypted on disk
    plain = tmp_path / "plain.json"
    Registry(url, token, **context, watch=False, last_known_good=plain).close()
    assert "hunter2" not in plain.read_text() and "db.password" not in json.loads(plain.read_text())["values"]

    restartable_server.stop()
    with Registry(url, token, **context, backoff=QUICK, last_known_good=saved, cache_key=key) as client:
        status = client.status()
        assert status.stale and status.source == "last-known-good" and status.revision == revision
        assert status.age >= 0 and "unreachable" in status.error
        assert client.get("db.password") == "hunter2" and client.get("chat.title") == "Lobby"
    left_out = Registry(url, token, **context, watch=False, last_known_good=plain)
    with left_out, pytest.raises(MissingKey, match="a secret left out of the last-known-good file"):
        left_out.get("db.password")
    with pytest.raises(RegistryUnavailable, match="cannot be decrypted"):
        Registry(url, token, **context, watch=False, last_known_good=saved, cache_key=Fernet.generate_key())
    with pytest.raises(RegistryUnavailable, match="no last-known-good file"):
        Registry(url, token, **context, watch=False, last_known_good=tmp_path / "none.json")
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        Registry(url, token, **context, watch=False)  # never a silent blank
