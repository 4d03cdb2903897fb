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


def _text(asgi_server: str, path: str, headers: dict | None = None):
    request = urllib.request.Request(f"http://{asgi_server}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def test_spring__the_v2_media_type_a_client_asks_for__answered_as_json(registry, asgi_server, make_token):
    headers = {"X-Config-Token": make_token("config:read", "secrets:read")}
    v2 = {**headers, "Accept": "application/vnd.spring-cloud.config-server.v2+json"}
    status, answer_headers, answer = _raw(asgi_server, "/spring/chat/production/", v2)
    assert status == 200 and answer_headers["Content-Type"] == "application/json"
    assert answer["propertySources"][0]["source"] == {"chat.enabled": True, "chat.max": 7}


def test_spring__file_forms__the_merged_view_as_yaml_properties_and_json(registry, asgi_server, make_token):
    import yaml

    headers = {"Authorization": f"Bearer {make_token('config:read', 'secrets:read')}"}
    status, answer_headers, text = _text(asgi_server, "/spring/chat-production.yml", headers)
    assert status == 200 and answer_headers["Content-Type"].startswith("text/plain")
    merged = {"chat": {"enabled": True, "max": 7}, "db": {"password": "s3"}, "log": {"level": "warn"}}
    assert yaml.safe_load(text) == merged  # a key's value whole: `log` from production, as resolve gives it
    assert yaml.safe_load(_text(asgi_server, "/spring/chat-production.yaml", headers)[2]) == merged
    status, answer_headers, text = _text(asgi_server, "/spring/chat-production.json", headers)
    assert answer_headers["Content-Type"] == "application/json" and json.loads(text) == merged
    status, _, text = _text(asgi_server, "/spring/chat-production.properties", headers)
    assert status == 200
    assert text.splitlines() == ["chat.enabled: true", "chat.max: 7", "db.password: s3", "log.level: warn"]
    assert AuditEvent.objects.filter(action="secret.reveal", target="environment=production,service=chat").exists()


def test_spring__file_forms__a_label_in_front_and_a_name_split_at_the_last_hyphen(
    make_layer, asgi_server, make_token, actor
):
    from config_registry.selectors import layer_get, registry_position
    from config_registry.services import version_publish

    make_layer("service:chat-gateway", {"routes": ["a", "b"], "banner": "line one\nline two"})
    make_layer("environment:eu", {"weight": 1.0})
    before = registry_position().revision
    version_publish(layer=layer_get("service:chat-gateway"), base_version=1, set_={"routes": ["c"]}, actor=actor)
    headers = {"X-Config-Token": make_token("config:read")}
    status, _, text = _text(asgi_server, f"/spring/{before}/chat-gateway-eu.properties", headers)
    assert status == 200
    assert text.splitlines() == ["banner: line one\\nline two", "routes[0]: a", "routes[1]: b", "weight: 1.0"]
    status, answer_headers, text = _text(asgi_server, "/spring/main/chat-gateway-eu.json", headers)
    assert json.loads(text) == {"banner": "line one\nline two", "routes": ["c"], "weight": 1.0}
    assert answer_headers["X-Config-Revision"] == str(registry_position().revision)
    status, _, text = _text(asgi_server, "/spring/feature-x/chat-gateway-eu.yml", headers)
    assert status == 404 and "labels are revisions" in json.loads(text)["message"]


def test_spring__file_forms__refused_like_the_json_form(registry, asgi_server, make_token):
    status, headers, _ = _text(asgi_server, "/spring/chat-production.yml")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="config-registry"'
    status, _, text = _text(asgi_server, "/spring/chat-production.yml", {"X-Config-Token": make_token("config:read")})
    assert status == 403 and "secrets:read" in json.loads(text)["message"]
    limited = make_token("config:read", "secrets:read", services=["billing"])
    status, _, text = _text(asgi_server, "/spring/chat-production.json", {"X-Config-Token": limited})
    assert status == 403 and "limited to" in json.loads(text)["message"]
    status, _, text = _text(asgi_server, "/spring/chat.yml", {"X-Config-Token": limited})
    assert status == 404 and "{application}-{profile}" in json.loads(text)["message"]


def test_spring__nested__keys_that_cannot_nest_stay_whole():
    from config_registry.protocols.spring import nested

    values = {"a": 1, "a.b": 2, "c": {"d": 1}, "c.e": 2, "c.d": 3, "f.g.h": None}
    assert nested(values) == {"a": 1, "a.b": 2, "c": {"d": 1, "e": 2}, "c.d": 3, "f": {"g": {"h": None}}}
