"""Spring Cloud Config (SPEC §9.2) driven by the real config-client against a live uvicorn, plus raw
HTTP for what the client does not show (401 with WWW-Authenticate, exact content type, labels)."""

import base64
import json
import urllib.error
import urllib.request

import pytest
from config import ConfigClient

from config_registry.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def registry(make_layer):
    values = {"log": {"level": "info", "targets": ["file", "stdout"]}, "db.password": "s3"}
    make_layer("global", values, secrets=["db.password"])
    make_layer("environment:production", {"log": {"level": "warn"}, "chat.max": 3})
    make_layer("service:chat", {"chat.max": 7, "chat.enabled": True})
    make_layer("environment:staging", {"chat.max": 1})


def _client(asgi_server: str, label: str = "main") -> ConfigClient:
    address = f"http://{asgi_server}/spring"
    return ConfigClient(address=address, app_name="chat", profile="production", label=label, fail_fast=False)


def _raw(asgi_server: str, path: str, headers: dict | None = None):
    request = urllib.request.Request(f"http://{asgi_server}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def test_spring__config_client_reads_the_service_view__most_specific_wins(registry, asgi_server, make_token):
    client = _client(asgi_server)
    client.get_config(auth=("anyone", make_token("config:read", "secrets:read")))  # Basic: the token as password
    assert client.get("chat.max") == 7  # service over environment
    assert client.get("log.level") == "warn"  # environment over global
    assert client.get("chat.enabled") is True
    assert client.get("db.password") == "s3"
    assert AuditEvent.objects.filter(action="secret.reveal", target="global").exists()


def test_spring__answer_shape__sources_most_specific_first_and_flattened(registry, asgi_server, make_token):
    token = make_token("config:read", "secrets:read")
    status, headers, answer = _raw(asgi_server, "/spring/chat/production", {"Authorization": f"Bearer {token}"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert answer["name"] == "chat" and answer["profiles"] == ["production"] and answer["label"] == "main"
    assert [source["name"] for source in answer["propertySources"]] == [
        "config-registry:service:chat@1",
        "config-registry:environment:production@1",
        "config-registry:global@1",
    ]
    assert answer["propertySources"][2]["source"] == {
        "db.password": "s3",
        "log.level": "info",
        "log.targets[0]": "file",
        "log.targets[1]": "stdout",
    }
    assert answer["version"].isdigit() and answer["state"] == ""


def test_spring__a_revision_label__that_revision(registry, asgi_server, make_token, actor):
    from config_registry.selectors import layer_get
    from config_registry.services import version_publish

    token = make_token("config:read", "secrets:read")
    _, _, before = _raw(asgi_server, "/spring/chat/production", {"X-Config-Token": token})
    layer = layer_get("service:chat")
    version_publish(layer=layer, base_version=1, set_={"chat.max": 8}, actor=actor)
    client = _client(asgi_server, label=before["version"])
    client.get_config(headers={"X-Config-Token": token})
    assert client.get("chat.max") == 7
    latest = _client(asgi_server, label="latest")
    latest.get_config(headers={"X-Config-Token": token})
    assert latest.get("chat.max") == 8
    status, _, answer = _raw(asgi_server, "/spring/chat/production/feature-x", {"X-Config-Token": token})
    assert status == 404 and "labels are revisions" in answer["message"]


def test_spring__auth_scope_limits_secrets_profiles__refused_in_springs_shape(registry, asgi_server, make_token):
    status, headers, answer = _raw(asgi_server, "/spring/chat/production")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="config-registry"'
    assert answer["status"] == 401 and answer["path"] == "/spring/chat/production"
    basic = base64.b64encode(b"user:crt_wrong").decode()
    assert _raw(asgi_server, "/spring/chat/production", {"Authorization": f"Basic {basic}"})[0] == 401
    reader = make_token("config:read")
    status, _, answer = _raw(asgi_server, "/spring/chat/production", {"X-Config-Token": reader})
    assert status == 403 and "secrets:read" in answer["message"]
    limited = make_token("config:read", "secrets:read", environments=["staging"])
    status, _, answer = _raw(asgi_server, "/spring/chat/production", {"X-Config-Token": limited})
    assert status == 403 and "limited to" in answer["message"]
    status, _, answer = _raw(asgi_server, "/spring/chat/production,staging", {"X-Config-Token": limited})
    assert status == 400 and "one profile" in answer["message"]
    writer = make_token("config:write")
    assert _raw(asgi_server, "/spring/chat/staging", {"X-Config-Token": writer})[0] == 403
