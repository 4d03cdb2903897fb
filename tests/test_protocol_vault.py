"""Vault KV v2 (SPEC §9.1) driven by the real hvac client against a live uvicorn, plus raw HTTP for
what hvac does not show (exact content types, HEAD, trailing slashes, the immutable-history refusals)."""

import json
import urllib.error
import urllib.request

import hvac
import pytest
from django.contrib.auth.models import User
from hvac import exceptions as vault

from config_registry.models import AuditEvent, Entry, LayerVersion

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def registry(make_layer):
    User.objects.create(username="alice")
    make_layer("global", {"log.level": "info", "db.password": "hunter2"}, secrets=["db.password"])
    make_layer("environment:production", {"log.level": "warn"})
    make_layer("environment:staging", {"log.level": "debug"})
    make_layer("service:chat", {"chat.enabled": True, "chat.max": 3})
    make_layer("user:alice", {"chat.max": 7})


def _client(asgi_server: str, token: str) -> hvac.Client:
    return hvac.Client(url=f"http://{asgi_server}", token=token, timeout=30)


def _read(client: hvac.Client, **kwargs) -> dict:
    return client.secrets.kv.v2.read_secret_version(raise_on_deleted_version=True, **kwargs)


def _write(client: hvac.Client, path: str, secret: dict, **kwargs) -> dict:
    return client.secrets.kv.v2.create_or_update_secret(path=path, secret=secret, **kwargs)


def _raw(asgi_server: str, path: str, token: str = "", method: str = "GET", body=None):
    headers = {"X-Vault-Token": token} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{asgi_server}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_vault__hvac_reads_a_layer_and_its_past_version(registry, asgi_server, make_token):
    client = _client(asgi_server, make_token("config:read", "config:write", "secrets:read"))
    assert client.is_authenticated()
    answer = _read(client, path="global", mount_point="layers")
    assert answer["data"]["data"] == {"log.level": "info", "db.password": "hunter2"}
    assert answer["data"]["metadata"]["version"] == 1
    _write(client, path="service/chat", secret={"chat.max": 5}, mount_point="layers")
    old = _read(client, path="service/chat", version=1, mount_point="layers")
    new = _read(client, path="service/chat", mount_point="layers")
    assert old["data"]["data"] == {"chat.enabled": True, "chat.max": 3}
    assert new["data"]["data"] == {"chat.max": 5}  # a Vault write is the whole secret: absent keys are unset
    assert new["data"]["metadata"]["version"] == 2
    assert AuditEvent.objects.filter(action="secret.reveal", target="global").exists()  # the reveal is audited


def test_vault__a_bad_or_missing_token__403_as_vault(registry, asgi_server):
    assert not _client(asgi_server, "crt_not-a-token").is_authenticated()
    with pytest.raises(vault.Forbidden):
        _read(_client(asgi_server, "crt_not-a-token"), path="global", mount_point="layers")
    status, headers, body = _raw(asgi_server, "/v1/layers/data/global")
    assert (status, json.loads(body)) == (403, {"errors": ["permission denied"]})
    assert headers["Content-Type"] == "application/json"


def test_vault__secrets_without_secrets_read__403_saying_so(registry, asgi_server, make_token):
    client = _client(asgi_server, make_token("config:read"))
    with pytest.raises(vault.Forbidden, match="secrets:read"):
        _read(client, path="global", mount_point="layers")
    plain = _read(client, path="environment/production", mount_point="layers")
    assert plain["data"]["data"] == {"log.level": "warn"}
    with pytest.raises(vault.Forbidden, match="secrets:read"):
        _read(client, path="production/chat", mount_point="config")
    with pytest.raises(vault.Forbidden, match="config:write"):
        _write(client, path="global", secret={"a": 1}, mount_point="layers")


def test_vault__write_with_cas__conflict_refused_and_nothing_written(registry, asgi_server, make_token):
    client = _client(asgi_server, make_token("config:read", "config:write", "secrets:read"))
    written = _write(client, path="environment/staging", secret={"log.level": "error"}, cas=1, mount_point="layers")
    assert written["data"]["version"] == 2
    versions = LayerVersion.objects.count()
    with pytest.raises(vault.InvalidRequest, match="check-and-set parameter did not match the current version"):
        _write(client, path="environment/staging", secret={"log.level": "stale"}, cas=1, mount_point="layers")
    assert LayerVersion.objects.count() == versions
    entry = Entry.objects.get(layer__name="staging", key="log.level", valid_to__isnull=True)
    assert entry.secret and "error" not in (entry.ciphertext or "")  # written through Vault: stored as a secret
    assert AuditEvent.objects.filter(action="version.publish", target="environment:staging").count() == 2


def test_vault__write_goes_through_the_native_rules(registry, asgi_server, make_token, actor):
    from config_registry.services import key_definition_save

    key_definition_save(key="log.level", schema={"type": "string", "enum": ["info", "warn"]}, actor=actor)
    client = _client(asgi_server, make_token("config:read", "config:write"))
    with pytest.raises(vault.InvalidRequest, match="log.level"):
        _write(client, path="global", secret={"log.level": 3}, mount_point="layers")
    with pytest.raises(vault.InvalidRequest, match="no user named"):
        _write(client, path="user/nobody", secret={"a": 1}, mount_point="layers")
    created = _write(client, path="service/billing", secret={"a": 1}, mount_point="layers")
    assert created["data"]["version"] == 1  # a missing service layer is created by its first write


def test_vault__metadata_and_lists(registry, asgi_server, make_token):
    client = _client(asgi_server, make_token("config:read", "secrets:read"))
    metadata = client.secrets.kv.v2.read_secret_metadata(path="environment/production", mount_point="layers")
    assert metadata["data"]["current_version"] == 1 and set(metadata["data"]["versions"]) == {"1"}
    assert client.secrets.kv.v2.list_secrets(path="", mount_point="layers")["data"]["keys"] == [
        "environment/",
        "global",
        "service/",
        "user/",
    ]
    assert client.secrets.kv.v2.list_secrets(path="environment", mount_point="layers")["data"]["keys"] == [
        "production",
        "staging",
    ]
    with pytest.raises(vault.InvalidPath):
        client.secrets.kv.v2.list_secrets(path="group", mount_point="layers")
    assert client.secrets.kv.v2.list_secrets(path="", mount_point="config")["data"]["keys"] == [
        "production/",
        "staging/",
    ]
    assert client.secrets.kv.v2.list_secrets(path="production", mount_point="config")["data"]["keys"] == ["chat/"]


def test_vault__config_mount_resolves_now_and_at_a_past_revision(registry, asgi_server, make_token):
    client = _client(asgi_server, make_token("config:read", "config:write", "secrets:read"))
    now = _read(client, path="production/chat/alice", mount_point="config")
    assert now["data"]["data"]["chat.max"] == 7 and now["data"]["data"]["db.password"] == "hunter2"
    revision = now["data"]["metadata"]["version"]
    _write(client, path="user/alice", secret={"chat.max": 9}, mount_point="layers")
    later = _read(client, path="production/chat/alice", mount_point="config")
    past = _read(client, path="production/chat/alice", version=revision, mount_point="config")
    assert later["data"]["data"]["chat.max"] == 9
    assert past["data"] == now["data"]
    with pytest.raises(vault.InvalidRequest, match="future"):
        _read(client, path="production/chat", version=revision + 99, mount_point="config")
    with pytest.raises(vault.InvalidPath):
        _read(client, path="production/chat/nobody", mount_point="config")


def test_vault__token_limits_apply(registry, asgi_server, make_token):
    client = _client(asgi_server, make_token("config:read", environments=["staging"]))
    assert _read(client, path="environment/staging", mount_point="layers")
    for path, mount in (("environment/production", "layers"), ("global", "layers"), ("production/chat", "config")):
        with pytest.raises(vault.Forbidden, match="limited to"):
            _read(client, path=path, mount_point=mount)
    assert client.secrets.kv.v2.list_secrets(path="", mount_point="layers")["data"]["keys"] == ["environment/"]


def test_vault__lookup_self_and_health(registry, asgi_server, make_token):
    client = _client(asgi_server, make_token("config:read", services=["chat"], name="reader"))
    me = client.auth.token.lookup_self()["data"]
    assert me["display_name"] == "token-reader" and me["policies"] == ["config:read"]
    assert me["meta"] == {"environments": "", "services": "chat"} and me["type"] == "service"
    health = client.sys.read_health_status(method="GET")
    assert health["initialized"] is True and health["sealed"] is False
    status, headers, body = _raw(asgi_server, "/v1/sys/health", method="HEAD")
    assert (status, body) == (200, b"")


def test_vault__raw_http__envelope_content_type_trailing_slash_immutable(registry, asgi_server, make_token):
    token = make_token("config:read", "config:write")
    for path in ("/v1/layers/data/environment/production", "/v1/layers/data/environment/production/"):
        status, headers, body = _raw(asgi_server, path, token)
        answer = json.loads(body)
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert {"request_id", "lease_id", "renewable", "lease_duration", "wrap_info", "warnings", "auth"} <= set(answer)
    status, _, body = _raw(asgi_server, "/v1/layers/data/environment/nowhere", token)
    assert (status, json.loads(body)) == (404, {"errors": []})
    for method, path in (
        ("DELETE", "/v1/layers/data/global"),
        ("POST", "/v1/layers/delete/global"),
        ("POST", "/v1/layers/destroy/global"),
        ("POST", "/v1/layers/metadata/global"),
    ):
        status, _, body = _raw(asgi_server, path, token, method=method, body={"versions": [1]})
        assert status == 400 and "history is immutable" in json.loads(body)["errors"][0], (method, path)
    status, _, body = _raw(asgi_server, "/v1/config/data/production/chat", token, method="POST", body={"data": {}})
    assert status == 405 and "layers mount" in json.loads(body)["errors"][0]
    status, _, body = _raw(asgi_server, "/v1/layers/data/global", token, method="POST", body=["not", "an", "object"])
    assert status == 400 and json.loads(body)["errors"]
    status, _, body = _raw(asgi_server, "/v1/secret/data/x", token)
    assert status == 404 and "no handler for route" in json.loads(body)["errors"][0]


def test_vault__list_verb_and_throttle_through_djangos_test_client(registry, make_token, client, settings):
    token = make_token("config:read")
    listed = client.generic("LIST", "/v1/layers/metadata/environment/", HTTP_X_VAULT_TOKEN=token)
    assert listed.status_code == 200 and listed.json()["data"]["keys"] == ["production", "staging"]
    assert client.get("/v1/layers/metadata/?list=true", HTTP_X_VAULT_TOKEN=token).json()["data"]["keys"][0]
    settings.API_THROTTLE_RATE = "2/min"
    answers = [client.get("/v1/layers/data/environment/staging", HTTP_X_VAULT_TOKEN=token) for _ in range(4)]
    throttled = answers[-1]
    assert throttled.status_code == 429 and throttled["Content-Type"] == "application/json"
    assert throttled["Retry-After"].isdigit() and "retry in" in throttled.json()["errors"][0]


def test_vault__a_view_without_secrets__the_same_answer_until_a_publish(make_layer, asgi_server, make_token, actor):
    from config_registry.selectors import layer_get
    from config_registry.services import version_publish

    make_layer("global", {"log.level": "info"})
    make_layer("service:chat", {"chat.max": 3})
    client = _client(asgi_server, make_token("config:read"))
    first, again = (_read(client, path="production/chat", mount_point="config") for _ in range(2))
    assert first["data"] == again["data"] and first["request_id"] != again["request_id"]
    assert first["data"]["data"] == {"chat.max": 3, "log.level": "info"}
    envelope = {"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"}
    assert set(first) == envelope
    version_publish(layer=layer_get("service:chat"), base_version=1, set_={"chat.max": 4}, actor=actor)
    later = _read(client, path="production/chat", mount_point="config")
    assert later["data"]["data"]["chat.max"] == 4
    assert later["data"]["metadata"]["version"] > first["data"]["metadata"]["version"]


def test_vault__put_writes_like_post__through_the_native_rules(registry, asgi_server, make_token):
    from config_registry.selectors import registry_position

    token = make_token("config:read", "config:write", "secrets:read")
    before = registry_position().revision
    body = {"data": {"log.level": "error"}, "options": {"cas": 1}}
    status, headers, raw = _raw(asgi_server, "/v1/layers/data/environment/production/", token, "PUT", body)
    answer = json.loads(raw)
    assert status == 200 and headers["Content-Type"] == "application/json" and answer["data"]["version"] == 2
    assert registry_position().revision == before + 1  # a publish like any other: the registry moves once
    audit = AuditEvent.objects.filter(action="version.publish", target="environment:production").latest("id")
    assert "error" not in json.dumps(audit.changes)  # stored as a secret: its value is not in the audit
    status, _, raw = _raw(asgi_server, "/v1/layers/data/environment/production", token, "PUT", body)
    assert status == 400 and "check-and-set" in json.loads(raw)["errors"][0]
    assert registry_position().revision == before + 1


def test_vault__group_layers__written_when_the_group_exists(registry, asgi_server, make_token):
    from django.contrib.auth.models import Group

    client = _client(asgi_server, make_token("config:read", "config:write", "secrets:read"))
    with pytest.raises(vault.InvalidRequest, match="no group named"):
        _write(client, path="group/beta", secret={"feature.x": True}, mount_point="layers")
    Group.objects.create(name="beta")
    assert _write(client, path="group/beta", secret={"feature.x": True}, mount_point="layers")["data"]["version"] == 1
    assert _read(client, path="group/beta", mount_point="layers")["data"]["data"] == {"feature.x": True}
    listed = _raw(asgi_server, "/v1/layers/metadata/group?list=1", make_token("config:read"))
    assert (listed[0], json.loads(listed[2])["data"]["keys"]) == (200, ["beta"])


def test_vault__any_accept_header__answered_in_vaults_json(registry, asgi_server, make_token):
    request = urllib.request.Request(
        f"http://{asgi_server}/v1/layers/data/environment/staging",
        headers={"X-Vault-Token": make_token("config:read"), "Accept": "text/html"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read())["data"]["data"] == {"log.level": "debug"}


def test_vault__health__database_unreachable__503_sealed(client, database_cursor_fails):
    response = client.get("/v1/sys/health")
    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert response.json()["sealed"] is True and response.json()["initialized"] is True
