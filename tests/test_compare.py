"""Compare (GET /api/v1/compare): two contexts or two layers side by side — added, removed, changed, with
where each value comes from; secrets never opened and shown only as changed; the token's limits hold."""

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(make_layer):
    for name in ("alice", "bob"):
        User.objects.create(username=name)
    make_layer("global", {"chat.max": 3, "db.password": "shared", "log.level": "info"}, secrets=["db.password"])
    make_layer("environment:production", {"chat.max": 5, "api.key": "p-key"}, secrets=["api.key"])
    make_layer("environment:staging", {"debug": True, "api.key": "s-key"}, secrets=["api.key"])
    make_layer("service:chat", {"chat.title": "Lobby"})
    make_layer("user:alice", {"chat.max": 9})


def _compare(api, token, **query):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api.get("/api/v1/compare", query)


def test_compare__two_environments__added_removed_changed_with_provenance(api, registry, make_token):
    answer = _compare(
        api, make_token("config:read", "secrets:read"), left="production/chat", right="staging/chat"
    ).json()
    assert answer["left"].startswith("production/chat (revision ") and answer["right"].startswith("staging/chat")
    assert answer["changed"]["chat.max"] == {
        "before": 5,
        "before_from": {"layer": "environment:production", "version": 1},
        "after": 3,
        "after_from": {"layer": "global", "version": 1},
        "secret": False,
    }
    assert answer["added"] == {"debug": {"after": True, "after_from": {"layer": "environment:staging", "version": 1},
                                         "secret": False}}  # fmt: skip
    assert answer["changed"]["api.key"]["before"] == answer["changed"]["api.key"]["after"] == "********"
    assert "db.password" not in answer["changed"]  # the same stored value on both sides: unchanged
    assert answer["unchanged"] == 3 and answer["removed"] == {}
    assert "p-key" not in str(answer) and "s-key" not in str(answer)


def test_compare__two_users_and_two_layers(api, registry, make_token):
    token = make_token("config:read")
    users = _compare(api, token, left="production/chat/alice", right="production/chat/bob").json()
    assert (
        list(users["changed"]) == ["chat.max"] and users["changed"]["chat.max"]["before_from"]["layer"] == "user:alice"
    )
    layers = _compare(api, token, left_layer="environment:production", right_layer="environment:staging").json()
    assert layers["left"] == "environment:production@1" and set(layers["added"]) == {"debug"}
    assert set(layers["removed"]) == {"chat.max"} and layers["changed"]["api.key"]["secret"] is True


def test_compare__bad_queries_and_limits(api, registry, make_token):
    token = make_token("config:read")
    assert _compare(api, token, left="production/chat").status_code == 400
    mixed = {"left": "production/chat", "left_layer": "global", "right_layer": "environment:staging"}
    assert _compare(api, token, **mixed).status_code == 400
    assert _compare(api, token, left="production", right="staging/chat").status_code == 400
    assert _compare(api, token, left="production/chat/nobody", right="staging/chat").status_code == 404
    assert _compare(api, token, left_layer="environment:nowhere", right_layer="global").status_code == 404
    limited = make_token("config:read", environments=["staging"])
    refused = _compare(api, limited, left="production/chat", right="staging/chat")
    assert refused.status_code == 403 and "limited to" in refused.json()["message"]


def test_admin_compare__contexts_and_layers_side_by_side(admin_client, registry):
    page = admin_client.get(
        "/admin/config_registry/layer/compare/", {"left": "production/chat", "right": "staging/chat"}
    )
    text = page.content.decode()
    assert page.status_code == 200 and "environment:production@1" in text and "<code>5</code>" in text
    assert "p-key" not in text and "s-key" not in text and "<em>secret</em>" in text
    layers = admin_client.get(
        "/admin/config_registry/layer/compare/", {"left": "global", "right": "environment:staging"}
    )
    assert "debug" in layers.content.decode()
    bad = admin_client.get("/admin/config_registry/layer/compare/", {"left": "nonsense", "right": "global"})
    assert "neither a layer" in bad.content.decode()
