"""Key search (GET /api/v1/keys/{key}): every layer that sets a key, secrets masked, its definition, where
each value wins and what overrides it; history on request; only the layers a token reaches."""

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(make_layer, actor):
    from config_registry.selectors import layer_get
    from config_registry.services import key_definition_save, version_publish

    User.objects.create(username="alice")
    make_layer("global", {"chat.max": 3, "database.password": "g-secret"}, secrets=["database.password"])
    make_layer(
        "environment:production", {"chat.max": 4, "database.password": "p-secret"}, secrets=["database.password"]
    )
    make_layer("environment:staging", {"other": 1})
    make_layer("service:chat", {"chat.title": "Lobby"})
    make_layer("service:billing", {"chat.max": 9})
    make_layer("user:alice", {"chat.max": 7})
    version_publish(layer=layer_get("environment:production"), base_version=1, set_={"chat.max": 5}, actor=actor)
    key_definition_save(key="chat.max", description="messages per minute", schema={"type": "integer"}, actor=actor)


def _get(api, token, key, **query):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api.get(f"/api/v1/keys/{key}", query)


def test_key_search__every_layer_where_it_wins_and_what_overrides_it(api, registry, make_token):
    answer = _get(api, make_token("config:read"), "chat.max").json()
    assert answer["definition"]["description"] == "messages per minute"
    layers = {setting["layer"]: setting for setting in answer["layers"]}
    assert list(layers) == ["global", "environment:production", "service:billing", "user:alice"]
    assert (layers["environment:production"]["value"], layers["environment:production"]["version"]) == (5, 2)
    assert layers["global"]["wins_in"] == ["staging/chat"]
    assert layers["environment:production"]["wins_in"] == ["production/chat"]
    assert layers["service:billing"]["wins_in"] == ["production/billing", "staging/billing"]
    assert layers["global"]["overridden_by"] == ["environment:production", "service:billing", "user:alice"]
    assert layers["user:alice"]["overridden_by"] == [] and layers["user:alice"]["wins_in"] == []


def test_key_search__secrets_masked_history_on_request(api, registry, make_token):
    token = make_token("config:read", "secrets:read")
    secret = _get(api, token, "database.password").json()
    assert {setting["value"] for setting in secret["layers"]} == {"********"}
    assert "g-secret" not in str(secret) and "p-secret" not in str(secret)
    history = _get(api, token, "chat.max", history="true").json()["layers"]
    production = [
        (s["version"], s["value"], s["current"], s["until"]) for s in history if s["layer"] == "environment:production"
    ]
    assert production == [(2, 5, True, None), (1, 4, False, 2)]


def test_key_search__limits_unknown_keys_and_bad_names(api, registry, make_token):
    limited = _get(api, make_token("config:read", environments=["staging"]), "chat.max").json()
    assert [setting["layer"] for setting in limited["layers"]] == []  # global applies everywhere: not reachable
    assert _get(api, make_token("config:read", environments=["staging"]), "other").json()["layers"][0]["layer"] == (
        "environment:staging"
    )
    missing = _get(api, make_token("config:read"), "no.such.key")
    assert missing.status_code == 404 and "no.such.key" in missing.json()["message"]
    bad = _get(api, make_token("config:read"), "Bad Key")
    assert bad.status_code == 400 and "key" in bad.json()["errors"]
    assert _get(api, make_token("audit:read"), "chat.max").status_code == 403


def test_admin_key_search__table_of_layers_secrets_masked(admin_client, registry):
    page = admin_client.get("/admin/config_registry/layer/keys/", {"key": "database.password"}).content.decode()
    assert "environment:production" in page and "global" in page and "<em>secret</em>" in page
    assert "g-secret" not in page and "p-secret" not in page
    page = admin_client.get("/admin/config_registry/layer/keys/", {"key": "chat.max", "history": "on"}).content.decode()
    assert "messages per minute" in page and "(until 2)" in page and "production/chat" in page
    missing = admin_client.get("/admin/config_registry/layer/keys/", {"key": "nope"}).content.decode()
    assert "no layer sets &#x27;nope&#x27;" in missing


def test_admin_layer_list__in_resolution_order_with_key_search(admin_client, registry):
    page = admin_client.get("/admin/config_registry/layer/").content.decode()
    order = [page.index(ref) for ref in ("global", "environment:production", "service:billing", "user:alice")]
    assert order == sorted(order)  # global first, as resolution reads them, not alphabetically
    assert "/admin/config_registry/layer/keys/" in page
