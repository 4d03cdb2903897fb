"""Layers, versions, rollback, diff and audit over the API: scopes, limits, errors, audit actor."""

import pytest

from config_registry.models import AuditEvent, LayerVersion


@pytest.fixture
def writer(api, make_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('config:read', 'config:write', name='deploy-bot')}")
    return api


def _publish(api, ref, base, set_=None, **extra):
    return api.post(f"/api/v1/layers/{ref}/versions", {"base_version": base, "set": set_ or {}, **extra}, format="json")


def test_layers__create_publish_read__full_cycle_audited_as_the_token(writer):
    created = writer.post("/api/v1/layers", {"ref": "environment:prod", "description": "Production"}, format="json")
    assert created.status_code == 201
    assert created.json() | {"updated_at": None} == {
        "ref": "environment:prod",
        "description": "Production",
        "priority": 0,
        "required_approvals": 0,
        "current_version": 0,
        "entries": {},
        "secrets": [],
        "updated_at": None,
        "updated_by": "",
    }

    published = _publish(
        writer, "environment:prod", 0, {"db.password": "pw", "pool": 5}, secrets=["db.password"], comment="first"
    )
    assert published.status_code == 201
    body = published.json()
    assert (body["version"], body["author"], body["comment"]) == (1, "token:deploy-bot", "first")
    assert body["changes"] == [
        {"key": "db.password", "change": "added", "secret": True},
        {"key": "pool", "change": "added", "secret": False},
    ]  # keys only (SPEC §4)

    layer = writer.get("/api/v1/layers/environment:prod").json()
    assert (layer["current_version"], layer["updated_by"], layer["entries"]["pool"]) == (1, "token:deploy-bot", 5)
    assert [v["version"] for v in writer.get("/api/v1/layers/environment:prod/versions").json()] == [1]
    assert writer.get("/api/v1/layers/environment:prod/versions/1").json()["entries"]["db.password"] == "********"
    assert [layer["ref"] for layer in writer.get("/api/v1/layers").json()] == ["environment:prod"]
    events = AuditEvent.objects.filter(target="environment:prod")
    assert [(e.action, e.actor) for e in events.order_by("seq")] == [
        ("layer.create", "token:deploy-bot"),
        ("version.publish", "token:deploy-bot"),
    ]


def test_publish__stale_base__409_with_current_version_and_nothing_written(writer, make_layer):
    make_layer("global", {"a": 1})
    assert _publish(writer, "global", 1, {"a": 2}).status_code == 201
    conflict = _publish(writer, "global", 1, {"a": 3})
    assert conflict.status_code == 409
    assert conflict.json() == {
        "error": "version_conflict",
        "current_version": 2,
        "message": "layer global is at version 2, your change was based on 1: reload and reapply",
    }
    assert LayerVersion.objects.count() == 2


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"set": {"a": 1}}, "base_version"),
        ({"base_version": -1}, "base_version"),
        ({"base_version": 1, "set": {"Bad Key": 1}}, "Bad Key"),
        ({"base_version": 1, "set": ["a"]}, "set"),
        ({"base_version": 1, "set": {"b": 1}, "secrets": ["c"]}, "c"),
        ({"base_version": 1, "unset": ["nope"]}, "nope"),
    ],
)
def test_publish__bad_body__400_naming_the_problem(writer, make_layer, payload, field):
    make_layer("global", {"a": 1})
    response = writer.post("/api/v1/layers/global/versions", payload, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert LayerVersion.objects.count() == 1


def test_publish__schema_violation__400_key_by_key(writer, make_layer, actor):
    from config_registry.services import key_definition_save

    key_definition_save(key="chat.max_message_length", schema={"type": "integer", "minimum": 1}, actor=actor)
    make_layer("global")
    response = _publish(writer, "global", 0, {"chat.max_message_length": -5})
    assert response.status_code == 400
    assert response.json()["errors"] == {"chat.max_message_length": "-5 is less than the minimum of 1"}


def test_publish__malformed_json__400(writer, make_layer):
    make_layer("global")
    response = writer.generic("POST", "/api/v1/layers/global/versions", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "parse_error"


@pytest.mark.parametrize(
    "url", ["/api/v1/layers/service:nope", "/api/v1/layers/global/versions/7", "/api/v1/layers/planet:mars"]
)
def test_layers__unknown_layer_or_version__404_or_400(writer, make_layer, url):
    make_layer("global", {"a": 1})
    response = writer.get(url)
    assert response.status_code in (400, 404) and response.json()["message"]


def test_rollback__publishes_copy_of_old_version(writer, make_layer):
    make_layer("global", {"a": 1})
    _publish(writer, "global", 1, {"a": 2})
    response = writer.post("/api/v1/layers/global/rollback", {"to_version": 1, "base_version": 2}, format="json")
    assert response.status_code == 201
    assert (response.json()["version"], response.json()["changes"], response.json()["rolled_back_from"]) == (
        3,
        [{"key": "a", "change": "changed", "secret": False}],
        1,
    )
    assert writer.get("/api/v1/layers/global/versions/3").json()["entries"] == {"a": 1}
    stale = writer.post("/api/v1/layers/global/rollback", {"to_version": 1, "base_version": 2}, format="json")
    assert stale.status_code == 409


def test_diff__secrets_only_as_changed(writer, make_layer):
    make_layer("global", {"a": 1, "s": "old-secret"}, secrets=["s"])
    _publish(writer, "global", 1, {"a": 2, "s": "new-secret"})
    response = writer.get("/api/v1/layers/global/diff", {"from": 1, "to": 2})
    assert response.json() == {
        "layer": "global",
        "from": 1,
        "to": 2,
        "added": {},
        "removed": {},
        "changed": {
            "a": {"kind": "changed", "secret": False, "before": 1, "after": 2},
            "s": {"kind": "changed", "secret": True},
        },
    }
    assert 'secret"' not in response.content.decode().replace('"secret":', "")
    assert writer.get("/api/v1/layers/global/diff", {"from": 1}).status_code == 400
    assert writer.get("/api/v1/layers/global/diff", {"from": 1, "to": 9}).status_code == 404


def test_writes__read_only_token__403(api, make_token, make_layer):
    make_layer("global", {"a": 1})
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('config:read')}")
    assert _publish(api, "global", 1, {"a": 2}).status_code == 403
    assert api.post("/api/v1/layers", {"ref": "service:x"}, format="json").status_code == 403
    assert LayerVersion.objects.count() == 1


def test_layers__limited_token__only_its_environment_layers(api, make_token, make_layer):
    for ref in ("global", "environment:prod", "environment:staging", "service:chat"):
        make_layer(ref, {"a": 1})
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('config:read', 'config:write', environments=['prod'])}")
    assert [layer["ref"] for layer in api.get("/api/v1/layers").json()] == ["environment:prod"]
    assert api.get("/api/v1/layers/environment:staging").status_code == 403
    assert _publish(api, "global", 1, {"a": 2}).status_code == 403
    assert _publish(api, "environment:prod", 1, {"a": 2}).status_code == 201
    assert _publish(api, "service:chat", 1, {"a": 2}).status_code == 403  # applies to staging too


def test_layer_detail__secrets_read__revealed_and_audited(api, make_token, make_layer):
    make_layer("global", {"s": "the-value"}, secrets=["s"])
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('config:read', 'secrets:read')}")
    assert api.get("/api/v1/layers/global").json()["entries"] == {"s": "the-value"}
    assert AuditEvent.objects.filter(action="secret.reveal", target="global").count() == 1


def test_audit__filters_and_pagination(api, make_token, make_layer, actor):
    make_layer("global", {"a": 1})
    make_layer("service:chat", {"b": 1})
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('audit:read')}")
    page = api.get("/api/v1/audit", {"page_size": 2}).json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    assert page["results"][0]["seq"] > page["results"][1]["seq"]
    publishes = api.get("/api/v1/audit", {"action": "version.publish", "target": "global"}).json()
    assert [(e["action"], e["target"]) for e in publishes["results"]] == [("version.publish", "global")]
    assert api.get("/api/v1/audit", {"since": "not-a-date"}).status_code == 400


def test_audit__without_audit_read__403(api, make_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('config:read')}")
    assert api.get("/api/v1/audit").status_code == 403
