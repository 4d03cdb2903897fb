"""The adversarial review of issue #11, over HTTP and the services: each break reproduced as its
reviewer did it, and what must happen instead (SPEC §12)."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection, transaction

from config_registry.audit import Actor
from config_registry.models import AuditEvent, Entry, Layer, LayerVersion, ServiceToken
from config_registry.services import key_definition_save, version_publish
from config_registry.state import locked_state

pytestmark = pytest.mark.django_db
ACTOR = Actor("admin:tester", may_write_security=True)
API = "/api/v1"
OLD_SECRET = "hunter2-old-secret"
SIGNING = "chat.signing_keys"


def _bearer(api, raw: str):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def _post_raw(api, path: str, body: bytes | str):
    return api.generic("POST", path, body, content_type="application/json")


def _plant(layer: Layer, entries: dict) -> LayerVersion:
    """A version written straight into the tables, as an older release or a bad row would leave it."""
    layer.refresh_from_db()
    with transaction.atomic():
        state = locked_state()
        state.revision += 1
        state.save(update_fields=["revision"])
        number = layer.current_version + 1
        version = LayerVersion.objects.create(
            layer=layer, number=number, revision=state.revision, author="planted", created_at=layer.created_at
        )
        replaced = Entry.objects.at(layer.pk, layer.current_version).filter(key__in=list(entries))
        Entry.objects.close(entry_ids=list(replaced.values_list("pk", flat=True)), at=number)
        for key, value in entries.items():
            Entry.objects.create(version=version, layer=layer, valid_from=number, key=key, value=value)
        Layer.objects.filter(pk=layer.pk).update(current_version=number)
    layer.refresh_from_db()
    return version


# 2. Secret plaintext in schema errors ---------------------------------------------------------


def test_rollback__old_secret_violates_schema__error_names_the_key_never_the_value(make_layer, make_token, api):
    layer = make_layer("service:s", {"s.p": OLD_SECRET}, secrets=["s.p"])
    version_publish(layer=layer, base_version=1, set_={"s.p": "abc"}, actor=ACTOR)
    key_definition_save(key="s.p", schema={"type": "string", "maxLength": 3}, actor=ACTOR)
    response = _bearer(api, make_token("config:write")).post(
        f"{API}/layers/service:s/rollback", {"to_version": 1, "base_version": 2}, format="json"
    )
    assert response.status_code == 400
    assert "s.p" in response.json()["errors"]
    assert OLD_SECRET not in response.content.decode()


def test_publish__secret_violates_pattern__error_never_quotes_the_value(make_layer, make_token, api):
    make_layer("service:s")
    key_definition_save(key="s.p", schema={"type": "string", "pattern": "^a"}, secret=True, actor=ACTOR)
    response = _bearer(api, make_token("config:write")).post(
        f"{API}/layers/service:s/versions", {"base_version": 0, "set": {"s.p": OLD_SECRET}}, format="json"
    )
    assert response.status_code == 400 and "s.p" in response.json()["errors"]
    assert OLD_SECRET not in response.content.decode()


def test_admin_rollback__old_secret_violates_schema__page_never_shows_it(make_layer, client):
    layer = make_layer("service:s", {"s.p": OLD_SECRET}, secrets=["s.p"])
    version_publish(layer=layer, base_version=1, set_={"s.p": "abc"}, actor=ACTOR)
    key_definition_save(key="s.p", schema={"type": "string", "maxLength": 3}, actor=ACTOR)
    staff = User.objects.create_user("ed", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_layer", "change_layer"]))
    client.force_login(staff)
    response = client.post(f"/admin/config_registry/layer/{layer.pk}/rollback/1/", {"base_version": 2}, follow=True)
    assert response.status_code == 200
    assert OLD_SECRET not in response.content.decode()
    assert "s.p" in response.content.decode()


def test_admin_key_definition__schema_on_a_secret_key_without_reveal__refused(make_layer, client):
    """Whether a rollback passes a schema would tell a secret bit by bit: only those who may read it may set one."""
    from config_registry.models import KeyDefinition

    make_layer("service:s", {"s.p": OLD_SECRET}, secrets=["s.p"])
    staff = User.objects.create_user("ed", password="pw", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_keydefinition", "view_keydefinition", "change_keydefinition"])
    )
    client.force_login(staff)
    answer = client.post(
        "/admin/config_registry/keydefinition/add/",
        {"key": "s.p", "schema": '{"type": "string", "pattern": "^h"}', "default": "null"},
    )
    assert answer.status_code == 200 and "Can reveal secret values" in answer.content.decode()
    assert not KeyDefinition.objects.filter(key="s.p").exists()
    staff.user_permissions.add(Permission.objects.get(codename="reveal_secret"))
    staff = User.objects.get(pk=staff.pk)  # permissions are cached per user object
    client.force_login(staff)
    answer = client.post(
        "/admin/config_registry/keydefinition/add/", {"key": "s.p", "schema": '{"type": "string"}', "default": "null"}
    )
    assert answer.status_code == 302 and KeyDefinition.objects.filter(key="s.p").exists()


# 3. Deep nesting: stored denial of service ----------------------------------------------------


@pytest.mark.parametrize("depth", [33, 200, 930])
def test_publish__value_nested_too_deep__400_and_reads_unharmed(make_layer, make_token, api, depth):
    make_layer("environment:development", {"a.b": 1})
    deep = "[" * depth + "]" * depth
    body = '{"base_version": 1, "set": {"x.deep": ' + deep + "}}"
    response = _post_raw(
        _bearer(api, make_token("config:write", "config:read", environments=["development"])),
        f"{API}/layers/environment:development/versions",
        body,
    )
    assert response.status_code == 400, response.content
    answer = response.json()
    if "errors" in answer:  # parsed: the key is named
        assert "32" in answer["errors"]["x.deep"]
    else:  # deeper than the parser goes (about 900 on Python 3.11): the body is refused as a whole
        assert depth > 200 and "32" in answer["message"]
    assert Layer.objects.get(name="development").current_version == 1
    resolved = api.get(f"{API}/resolve", {"environment": "development", "service": "chat"})
    assert resolved.status_code == 200 and resolved.json()["values"] == {"a.b": 1}


def test_publish__nested_exactly_32_deep__accepted(make_layer, actor):
    layer = make_layer("global")
    value = 0
    for _ in range(32):
        value = [value]
    version_publish(layer=layer, base_version=0, set_={"x.ok": value}, actor=actor)


def test_resolve__a_stored_value_nested_900_deep__still_answers(make_layer, make_token, api):
    layer = make_layer("global", {"a.b": 1})
    deep = []
    for _ in range(900):
        deep = [deep]
    _plant(layer, {"a.b": 1, "x.deep": deep})
    response = _bearer(api, make_token("config:read")).get(
        f"{API}/resolve", {"environment": "development", "service": "chat"}
    )
    assert response.status_code == 200
    assert response.json()["values"]["a.b"] == 1


def test_publish__layer_over_its_total_size__400_and_nothing_written(make_layer, actor, settings):
    from config_registry.exceptions import InvalidInput
    from config_registry.limits import MAX_LAYER_BYTES, MAX_VALUE_BYTES

    layer = make_layer("global")
    chunk = "x" * (MAX_VALUE_BYTES - 100)
    values = {f"k.v{i}": chunk for i in range(MAX_LAYER_BYTES // MAX_VALUE_BYTES + 1)}
    with pytest.raises(InvalidInput) as refused:
        version_publish(layer=layer, base_version=0, set_=values, actor=actor)
    assert "layer" in str(refused.value)
    assert Layer.objects.get(pk=layer.pk).current_version == 0


# 4. Lone surrogates ---------------------------------------------------------------------------


def test_publish__lone_surrogate__400_before_anything_is_written(make_layer, make_token, api):
    make_layer("global", {"a.c": 1})
    response = _post_raw(
        _bearer(api, make_token("config:write")),
        f"{API}/layers/global/versions",
        '{"base_version": 1, "set": {"a.b": "x\\ud800y"}}',
    )
    assert response.status_code == 400, response.content
    assert "set.a.b" in response.json()["errors"]
    assert Layer.objects.get(level="global").current_version == 1
    assert AuditEvent.objects.filter(action="version.publish").count() == 1


def test_publish__nul_in_a_value__400_not_an_outage(make_layer, make_token, api):
    make_layer("global", {"a.c": 1})
    response = _post_raw(
        _bearer(api, make_token("config:write")),
        f"{API}/layers/global/versions",
        '{"base_version": 1, "set": {"a.b": "x\\u0000y"}}',
    )
    assert response.status_code == 400, response.content
    assert "a.b" in response.json()["errors"]


@pytest.fixture
def surrogate_row(make_layer):
    """A lone surrogate stored by an older release (only SQLite can hold one: PostgreSQL refuses it)."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL cannot store a lone surrogate at all: such a row exists only on SQLite")
    layer = make_layer("global", {"a.b": "fine"})
    _plant(layer, {"a.b": "x\ud800y"})
    with transaction.atomic():
        from config_registry.audit import audit_record

        audit_record(
            actor=ACTOR,
            action="version.publish",
            target="global",
            changes={"version": 2, "keys": {"a.b": {"after": "x\ud800y"}}},
        )
    return layer


def test_history__a_stored_lone_surrogate__every_page_still_answers(surrogate_row, make_token, api, client):
    _bearer(api, make_token("config:read", "audit:read"))
    for path in (
        "layers/global",
        "layers/global/versions/2",
        "layers/global/diff?from=1&to=2",
        "audit",
        "resolve?environment=development&service=chat",
    ):
        response = api.get(f"{API}/{path}")
        assert response.status_code == 200, (path, response.content)
        json.loads(response.content)
    client.force_login(User.objects.create_superuser("root", password="pw"))
    event = AuditEvent.objects.order_by("-seq").first()
    for path in (
        f"layer/{surrogate_row.pk}/change/",
        f"layer/{surrogate_row.pk}/diff/?from=1&to=2",
        f"layer/{surrogate_row.pk}/history/",
        "auditevent/",
        f"auditevent/{event.pk}/change/",
    ):
        assert client.get(f"/admin/config_registry/{path}").status_code == 200, path


# 6. Bodies that were 500s ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["layers/global/versions", "layers/global/rollback", "layers", "chat/ticket"])
def test_api__body_nested_100000_deep__json_400(make_layer, make_token, api, path):
    make_layer("global", {"a.b": 1})
    response = _post_raw(
        _bearer(api, make_token("config:write", "chat:ticket")), f"{API}/{path}", "[" * 100_000 + "]" * 100_000
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"] == "parse_error" and "nested too deep" in response.json()["message"]


def test_api__body_nested_100000_deep_with_a_session__json_400(make_user, client):
    make_user("alice")
    client.login(username="alice", password="pw-alice")
    response = client.generic(
        "POST", f"{API}/chat/ticket", "[" * 100_000 + "]" * 100_000, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"] == "parse_error"


def test_api__body_over_the_size_limit__json_413(make_layer, make_token, api, settings):
    make_layer("global", {"a.b": 1})
    body = json.dumps({"base_version": 1, "set": {"a.b": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)}})
    response = _post_raw(_bearer(api, make_token("config:write")), f"{API}/layers/global/versions", body)
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "too_large"


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def test_admin_editor__base_version_not_a_number__form_error(make_layer, admin_client):
    layer = make_layer("global", {"a.b": 1})
    response = admin_client.post(
        f"/admin/config_registry/layer/{layer.pk}/change/",
        {"base_version": "abc", "_publish": "1", "form-TOTAL_FORMS": 0, "form-INITIAL_FORMS": 0},
    )
    assert response.status_code == 200
    assert "base version" in response.content.decode().lower()


def test_admin_rollback__unknown_version__404_page_not_500(make_layer, admin_client):
    layer = make_layer("global", {"a.b": 1})
    assert admin_client.get(f"/admin/config_registry/layer/{layer.pk}/rollback/999/").status_code == 404


def test_admin_rollback__post_without_base_version__form_error(make_layer, admin_client):
    layer = make_layer("global", {"a.b": 1})
    version_publish(layer=layer, base_version=1, set_={"a.b": 2}, actor=ACTOR)
    response = admin_client.post(f"/admin/config_registry/layer/{layer.pk}/rollback/1/", {}, follow=True)
    assert response.status_code == 200
    assert "base_version" in response.content.decode()
    assert Layer.objects.get(pk=layer.pk).current_version == 2


# 8. NUL bytes look like an outage -------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "layers/group:a%00b",
        "layers/user:a%00b",
        "audit?actor=a%00b",
        "resolve?environment=development&service=chat&user=a%00b",
    ],
)
def test_api__nul_in_a_name__400(make_token, api, path):
    response = _bearer(api, make_token("config:read", "audit:read")).get(f"{API}/{path}")
    assert response.status_code == 400, response.content


# 9. The deployment's own signing keys ---------------------------------------------------------


@pytest.fixture
def signing(make_layer):
    make_layer("global", {SIGNING: ["k" * 40], "a.b": 1}, secrets=[SIGNING])
    return make_layer("environment:development")


@pytest.mark.parametrize("limits", [{"environments": ["development"]}, {}])
def test_resolve__secrets_read_token__never_gets_the_signing_keys(signing, make_token, api, limits):
    _bearer(api, make_token("config:read", "secrets:read", **limits))
    answer = api.get(f"{API}/resolve", {"environment": "development", "service": "chat", "explain": "true"})
    assert answer.status_code == 200
    assert answer.json()["values"][SIGNING] == "********"
    assert "k" * 40 not in answer.content.decode()
    for path in ("layers/global", "layers/global/versions/1"):
        assert "k" * 40 not in api.get(f"{API}/{path}").content.decode()


def test_publish__signing_keys_with_a_limited_config_write_token__403(signing, make_token, api):
    _bearer(api, make_token("config:write", environments=["development"]))
    response = api.post(
        f"{API}/layers/environment:development/versions",
        {"base_version": 0, "set": {SIGNING: ["m" * 40]}, "secrets": [SIGNING]},
        format="json",
    )
    assert response.status_code == 403
    assert "security:write" in response.json()["message"]
    assert not Layer.objects.get(name="development").current_version


def test_publish__signing_keys_with_security_write__accepted(signing, make_token, api):
    _bearer(api, make_token("config:write", "security:write"))
    response = api.post(
        f"{API}/layers/global/versions",
        {"base_version": 1, "set": {SIGNING: ["m" * 40, "k" * 40]}, "secrets": [SIGNING]},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_token_create__security_write_with_limits__refused(db):
    from config_registry.exceptions import InvalidInput
    from config_registry.services import token_create

    with pytest.raises(InvalidInput, match="security:write"):
        token_create(name="sec", scopes=["security:write"], environments=["development"], actor=ACTOR)


def test_admin_token_add__scope_beyond_the_creators_permissions__refused(client, db):
    staff = User.objects.create_user("minter", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["add_servicetoken", "view_servicetoken"]))
    client.force_login(staff)
    response = client.post("/admin/config_registry/servicetoken/add/", {"name": "mint", "scopes": ["secrets:read"]})
    assert response.status_code == 200
    assert not ServiceToken.objects.filter(name="mint").exists()
    assert "secrets:read" in response.content.decode()


def test_admin__signing_keys_without_the_security_permission__not_published(signing, client):
    staff = User.objects.create_user("ed", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_layer", "change_layer"]))
    client.force_login(staff)
    layer = Layer.objects.get(name="development")
    response = client.post(
        f"/admin/config_registry/layer/{layer.pk}/change/",
        {
            "base_version": 0,
            "_publish": "1",
            "comment": "",
            "form-TOTAL_FORMS": 1,
            "form-INITIAL_FORMS": 0,
            "form-0-key": SIGNING,
            "form-0-value": json.dumps(["m" * 40]),
            "form-0-secret": "on",
        },
    )
    assert response.status_code == 200
    assert Layer.objects.get(pk=layer.pk).current_version == 0


# 12. Ciphertext replay across versions --------------------------------------------------------


def test_decrypt__ciphertext_copied_from_an_older_version__refused(make_layer, actor, make_token, api):
    from config_registry.exceptions import SecretUndecryptable
    from config_registry.selectors import version_states

    layer = make_layer("global", {"db.password": "old"}, secrets=["db.password"])
    version_publish(layer=layer, base_version=1, set_={"db.password": "new"}, actor=actor)
    version_publish(layer=layer, base_version=2, set_={"other": 1}, actor=actor)
    old = Entry.objects.get(version__layer=layer, version__number=1, key="db.password")
    third = Entry.objects.at(layer.pk, 3).get(key="db.password")  # written by version 2, still current
    Entry.objects.rewrap(entry_id=third.pk, ciphertext=old.ciphertext)  # an attacker's UPDATE
    with pytest.raises(SecretUndecryptable, match="belongs to version 1"):
        version_states(layer, 3)


# 18. Small ones -------------------------------------------------------------------------------


def test_publish_answer__changed_keys_only__no_entries(make_layer, make_token, api):
    make_layer("global", {"a.b": 1, "db.password": "pw", "theme": "dark"}, secrets=["db.password"])
    response = _bearer(api, make_token("config:write")).post(
        f"{API}/layers/global/versions", {"base_version": 1, "set": {"a.b": 2}, "unset": ["theme"]}, format="json"
    )
    assert response.status_code == 201
    answer = response.json()
    assert "entries" not in answer and "dark" not in response.content.decode()
    assert answer["changes"] == [
        {"key": "a.b", "change": "changed", "secret": False},
        {"key": "theme", "change": "removed", "secret": False},
    ]
