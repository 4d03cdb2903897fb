"""GET /api/v1/resolve and /api/v1/me/config: authentication, scopes, limits, masking, ETags."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config_registry.models import AuditEvent, ServiceToken
from config_registry.services import token_revoke, version_publish

RESOLVE = "/api/v1/resolve"


@pytest.fixture
def registry(make_layer, make_user):
    make_user("alice", "staff")
    make_user("bob")
    return {
        "global": make_layer("global", {"color": "grey", "db.password": "s3cret-global"}, secrets=["db.password"]),
        "prod": make_layer("environment:prod", {"color": "blue"}),
        "staff": make_layer("group:staff", {"color": "red", "chat.max_message_length": 4000}),
        "alice": make_layer("user:alice", {"theme": "dark"}),
    }


def _get(api, raw, **params):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api.get(RESOLVE, params)


def test_resolve__config_read__values_masked_with_revision_and_context(api, registry, make_token):
    response = _get(api, make_token("config:read"), environment="prod", service="chat", user="alice")
    assert response.status_code == 200
    body = response.json()
    assert body["values"] == {
        "color": "red",
        "db.password": "********",
        "theme": "dark",
        "chat.max_message_length": 4000,
    }
    assert body["context"] == {"environment": "prod", "service": "chat", "user": "alice"}
    assert "provenance" not in body and body["revision"] > 0


def test_resolve__explain__provenance_with_overrides_highest_first(api, registry, make_token):
    body = _get(api, make_token("config:read"), environment="prod", service="chat", user="alice", explain="true").json()
    assert body["provenance"]["color"] == {
        "layer": "group:staff",
        "version": 1,
        "overrides": [{"layer": "environment:prod", "version": 1}, {"layer": "global", "version": 1}],
    }


def test_resolve__secrets_read__revealed_and_audited(api, registry, make_token):
    raw = make_token("config:read", "secrets:read", name="revealer")
    body = _get(api, raw, environment="prod", service="chat", user="alice").json()
    assert body["values"]["db.password"] == "s3cret-global"
    event = AuditEvent.objects.order_by("seq").last()
    assert (event.action, event.actor, event.changes["keys"]) == ("secret.reveal", "token:revealer", ["db.password"])


def test_resolve__etag__304_until_the_next_publish(api, registry, make_token, actor):
    raw = make_token("config:read")
    first = _get(api, raw, environment="prod", service="chat", user="alice")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_IF_NONE_MATCH=etag)
    again = api.get(RESOLVE, {"environment": "prod", "service": "chat", "user": "alice"})
    assert (again.status_code, again.headers["ETag"], again.content) == (304, etag, b"")
    other_context = api.get(RESOLVE, {"environment": "prod", "service": "chat", "user": "bob"})
    assert other_context.status_code == 200
    version_publish(layer=registry["alice"], base_version=1, set_={"theme": "light"}, actor=actor)
    changed = api.get(RESOLVE, {"environment": "prod", "service": "chat", "user": "alice"})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["values"]["theme"] == "light"


def test_resolve__same_request_twice__same_bytes(api, registry, make_token):
    raw = make_token("config:read")
    first = _get(api, raw, environment="prod", service="chat", user="alice")
    second = _get(api, raw, environment="prod", service="chat", user="alice")
    assert first.content == second.content and first.headers["ETag"] == second.headers["ETag"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"service": "chat"}, "environment"),
        ({"environment": "prod"}, "service"),
        ({"environment": "Prod!", "service": "chat"}, "environment"),
        ({"environment": "prod", "service": "chat", "explain": "maybe"}, "explain"),
    ],
)
def test_resolve__bad_parameters__400_naming_the_field(api, registry, make_token, params, field):
    response = _get(api, make_token("config:read"), **params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_input" and field in body["errors"] and field in body["message"]


def test_resolve__unknown_user__404(api, registry, make_token):
    response = _get(api, make_token("config:read"), environment="prod", service="chat", user="carol")
    assert (response.status_code, response.json()) == (
        404,
        {"error": "not_found", "message": "user 'carol' does not exist"},
    )


def test_resolve__token_limited_to_one_environment__403_for_another(api, registry, make_token):
    raw = make_token("config:read", environments=["prod"], services=["chat"])
    assert _get(api, raw, environment="prod", service="chat", user="alice").status_code == 200
    other = _get(api, raw, environment="staging", service="chat", user="alice")
    assert other.status_code == 403
    assert other.json()["message"] == "token 'token-0' is limited to environments prod; not 'staging'"
    assert _get(api, raw, environment="prod", service="billing").status_code == 403


def test_resolve__without_config_read__403(api, registry, make_token):
    response = _get(api, make_token("audit:read"), environment="prod", service="chat")
    assert response.status_code == 403 and "lacks the scope 'config:read'" in response.json()["message"]


def test_resolve__no_bad_expired_or_revoked_token__401_with_reason(api, registry, make_token, actor):
    no_token = api.get(RESOLVE, {"environment": "prod", "service": "chat"})
    assert no_token.status_code == 401 and no_token.headers["WWW-Authenticate"].startswith("Bearer")
    assert _get(api, "crt_not-a-token", environment="prod", service="chat").json()["message"] == "invalid service token"
    api.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=")
    assert api.get(RESOLVE, {"environment": "prod", "service": "chat"}).status_code == 401

    expired = make_token("config:read", name="expired")
    token = ServiceToken.objects.get(name="expired")
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save(update_fields=["expires_at"])
    response = _get(api, expired, environment="prod", service="chat")
    assert response.status_code == 401 and "'expired' expired at" in response.json()["message"]

    revoked = make_token("config:read", name="revoked")
    assert _get(api, revoked, environment="prod", service="chat").status_code == 200  # now cached
    token_revoke(token=ServiceToken.objects.get(name="revoked"), actor=actor)
    response = _get(api, revoked, environment="prod", service="chat")
    assert response.status_code == 401 and "'revoked' was revoked at" in response.json()["message"]


def test_resolve__throttled_per_token__429_with_retry_after(api, registry, make_token, settings):
    settings.API_THROTTLE_RATE = "3/min"
    raw, other = make_token("config:read"), make_token("config:read")
    codes = [_get(api, raw, environment="prod", service="chat").status_code for _ in range(4)]
    # The window may roll over between requests, at most once: then the count starts again.
    assert codes[:3] == [200, 200, 200] and codes[3] in (200, 429)
    limited = [_get(api, raw, environment="prod", service="chat") for _ in range(3)][-1]
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"] == "throttled" and "retry in" in limited.json()["message"]
    assert _get(api, other, environment="prod", service="chat").status_code == 200


def test_resolve__warm__served_from_cache_without_reading_layers(
    api, registry, make_token, django_assert_max_num_queries
):
    raw = make_token("config:read")
    _get(api, raw, environment="prod", service="chat", user="alice")
    with django_assert_max_num_queries(1):  # the registry position; the token and the answer are in memory
        assert _get(api, raw, environment="prod", service="chat", user="alice").status_code == 200


# /api/v1/me/config ---------------------------------------------------------------------------


def test_me_config__signed_in_user__own_values_without_secrets(client, registry):
    client.login(username="alice", password="pw-alice")
    response = client.get("/api/v1/me/config", {"environment": "prod", "service": "chat"})
    assert response.status_code == 200
    body = response.json()
    assert body["values"] == {"color": "red", "theme": "dark", "chat.max_message_length": 4000}
    assert body["context"]["user"] == "alice" and "db.password" not in response.content.decode()


def test_me_config__cannot_name_another_user(client, registry):
    client.login(username="bob", password="pw-bob")
    body = client.get("/api/v1/me/config", {"environment": "prod", "service": "chat", "user": "alice"}).json()
    assert body["context"]["user"] == "bob" and "theme" not in body["values"]


def test_me_config__anonymous_or_service_token__refused(client, api, registry, make_token):
    assert client.get("/api/v1/me/config", {"environment": "prod", "service": "chat"}).status_code in (401, 403)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('config:read')}")
    response = api.get("/api/v1/me/config", {"environment": "prod", "service": "chat"})
    assert response.status_code == 403 and "signed-in users" in response.json()["message"]


def test_unknown_api_url__json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_service_token__used__last_used_recorded(api, registry, make_token):
    raw = make_token("config:read", name="used")
    _get(api, raw, environment="prod", service="chat")
    assert ServiceToken.objects.get(name="used").last_used_at is not None
