"""The admin as configuration admins use it, with Django's test client: every screen, every
permission, and no secret plaintext in any page for those without the reveal permission."""

import re

import pytest
from django.contrib.auth.models import Permission, User

from config_registry.models import AuditEvent, KeyDefinition, Layer, ServiceToken
from config_registry.selectors import version_states
from config_registry.services import key_definition_save, version_publish

SECRET = "pl41ntext-s3cret-value"


@pytest.fixture
def registry(make_layer, make_user, actor):
    make_user("alice", "staff")
    make_user("bob", "staff")
    key_definition_save(
        key="chat.max_message_length",
        description="Longest message",
        schema={"type": "integer", "minimum": 1},
        actor=actor,
    )
    return make_layer(
        "global", {"chat.max_message_length": 100, "db.password": SECRET, "theme": "light"}, secrets=["db.password"]
    )


def _staff(username: str, *permissions: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.fixture
def editor(client, db):
    user = _staff(
        "editor",
        "view_layer",
        "change_layer",
        "add_layer",
        "view_keydefinition",
        "change_keydefinition",
        "add_keydefinition",
        "view_servicetoken",
        "add_servicetoken",
        "change_servicetoken",
        "view_auditevent",
        "view_layerversion",
        "grant_chat_ticket",
    )
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client, db):
    client.force_login(_staff("viewer", "view_layer", "view_keydefinition", "view_servicetoken", "view_auditevent"))
    return client


def _editor_post(client, layer, rows: dict, *, base: int, comment: str = "", action: str = "_publish", total=None):
    """Post the editor form: rows is {key: (value_text, secret, existing, delete)}."""
    data = {
        "base_version": base,
        "comment": comment,
        action: "1",
        "form-INITIAL_FORMS": 0,
        "form-MIN_NUM_FORMS": 0,
        "form-MAX_NUM_FORMS": 1000,
        "form-TOTAL_FORMS": total or len(rows),
    }
    for i, (key, (value, secret, existing, delete)) in enumerate(rows.items()):
        data.update({f"form-{i}-key": key, f"form-{i}-value": value})
        if secret:
            data[f"form-{i}-secret"] = "on"
            if existing:
                data[f"form-{i}-was_secret"] = "1"
        if existing:
            data[f"form-{i}-existing"] = "1"
        if delete:
            data[f"form-{i}-delete"] = "on"
    return client.post(f"/admin/config_registry/layer/{layer.pk}/change/", data)


def _current_rows(**changes):
    rows = {
        "chat.max_message_length": ("100", False, True, False),
        "db.password": ("", True, True, False),
        "theme": ('"light"', False, True, False),
    }
    rows.update(changes)
    return rows


def test_layer_list__shows_level_version_author_time(editor, registry):
    page = editor.get("/admin/config_registry/layer/").content.decode()
    assert "global" in page and "admin:tester" in page and ">1<" in page


def test_layer_editor__entries_table_with_descriptions_and_masked_secrets(editor, registry):
    page = editor.get(f"/admin/config_registry/layer/{registry.pk}/change/").content.decode()
    assert "chat.max_message_length" in page and "Longest message" in page and "unchanged" in page
    assert SECRET not in page


def test_layer_editor__save__publishes_a_version_with_comment_audited_as_the_admin(editor, registry):
    response = _editor_post(
        editor,
        registry,
        _current_rows(
            **{"chat.max_message_length": ("250", False, True, False), "new.flag": ("true", False, False, False)}
        ),
        base=1,
        comment="raise the limit",
    )
    assert response.status_code == 302
    registry.refresh_from_db()
    assert registry.current_version == 2
    values = {k: s.value for k, s in version_states(registry, 2).items()}
    assert values == {"chat.max_message_length": 250, "db.password": SECRET, "theme": "light", "new.flag": True}
    version = registry.versions.get(number=2)
    assert (version.author, version.comment) == ("admin:editor", "raise the limit")
    assert AuditEvent.objects.filter(action="version.publish", actor="admin:editor").count() == 1


def test_layer_editor__secret_is_write_only__blank_keeps_typed_replaces(editor, registry):
    _editor_post(editor, registry, _current_rows(theme=('"dark"', False, True, False)), base=1)
    assert version_states(registry, 2)["db.password"].value == SECRET
    _editor_post(
        editor,
        registry,
        _current_rows(**{"db.password": ('"rotated"', True, True, False), "theme": ('"dark"', False, True, False)}),
        base=2,
    )
    assert version_states(registry, 3)["db.password"].value == "rotated"


def test_layer_editor__preview__shows_diff_and_reach_without_publishing(editor, registry):
    response = _editor_post(
        editor,
        registry,
        _current_rows(theme=('"dark"', False, True, False), **{"db.password": ('"new"', True, True, False)}),
        base=1,
        action="_preview",
    )
    page = response.content.decode()
    assert response.status_code == 200 and "Before you publish" in page
    assert "reaches <strong>" in page and "every user in every environment and service" in page
    assert (
        "secret changed (value not shown)" in page
        and '"new"' not in page.split("Before you publish")[1].split("</table>")[0]
    )
    assert Layer.objects.get(pk=registry.pk).current_version == 1
    # The form comes back as typed: plain rows stay plain (with the new value), secrets stay write-only.
    assert "&quot;dark&quot;</textarea>" in page and page.count('type="password"') == 1


def test_layer_editor__someone_published_meanwhile__says_so_shows_their_change_keeps_the_edit(editor, registry, actor):
    version_publish(layer=registry, base_version=1, set_={"theme": "blue"}, actor=actor)
    response = _editor_post(
        editor, registry, _current_rows(**{"chat.max_message_length": ("999", False, True, False)}), base=1
    )
    page = response.content.decode()
    assert response.status_code == 200 and "Someone else published meanwhile" in page
    assert "is at version 2, your change was based on 1" in page and "blue" in page
    assert "999" in page  # the admin's edit is still in the form
    assert 'name="base_version" value="2"' in page
    assert Layer.objects.get(pk=registry.pk).current_version == 2


def test_layer_editor__schema_violation__error_inline_next_to_the_key(editor, registry):
    response = _editor_post(
        editor, registry, _current_rows(**{"chat.max_message_length": ("0", False, True, False)}), base=1
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert re.search(r"chat\.max_message_length</code>.*?0 is less than the minimum of 1", page, re.S)
    assert Layer.objects.get(pk=registry.pk).current_version == 1


def test_layer_editor__invalid_json__error_inline_and_nothing_published(editor, registry):
    response = _editor_post(editor, registry, _current_rows(theme=("dark", False, True, False)), base=1)
    assert "not valid JSON" in response.content.decode()
    assert Layer.objects.get(pk=registry.pk).current_version == 1


def test_history_diff_and_rollback__with_confirmation(editor, registry, actor):
    version_publish(layer=registry, base_version=1, set_={"theme": "dark", "db.password": "other"}, actor=actor)
    history = editor.get(f"/admin/config_registry/layer/{registry.pk}/history/").content.decode()
    assert "roll back to this" in history and "admin:tester" in history
    diff = editor.get(f"/admin/config_registry/layer/{registry.pk}/diff/?from=1&to=2").content.decode()
    assert "light" in diff and "dark" in diff and "secret changed (value not shown)" in diff
    assert "other" not in diff and SECRET not in diff
    confirm = editor.get(f"/admin/config_registry/layer/{registry.pk}/rollback/1/")
    assert "Roll global back to version 1?" in confirm.content.decode()
    assert Layer.objects.get(pk=registry.pk).current_version == 2  # a GET changes nothing
    done = editor.post(f"/admin/config_registry/layer/{registry.pk}/rollback/1/", {"base_version": 2})
    assert done.status_code == 302
    assert version_states(registry, 3) == version_states(registry, 1)


def test_reveal__needs_the_permission__then_one_value_audited(client, registry):
    no_reveal = _staff("looker", "view_layer", "change_layer")
    client.force_login(no_reveal)
    assert client.post(f"/admin/config_registry/layer/{registry.pk}/reveal/", {"key": "db.password"}).status_code == 403
    revealer = _staff("revealer", "view_layer", "reveal_secret")
    client.force_login(revealer)
    page = client.get(f"/admin/config_registry/layer/{registry.pk}/change/").content.decode()
    assert "Reveal" in page and SECRET not in page
    response = client.post(f"/admin/config_registry/layer/{registry.pk}/reveal/", {"key": "db.password"})
    assert SECRET in response.content.decode() and "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.order_by("seq").last()
    assert (event.action, event.actor, event.changes["keys"]) == ("secret.reveal", "admin:revealer", ["db.password"])


def test_view_only_staff__can_look_not_change(viewer, registry):
    page = viewer.get(f"/admin/config_registry/layer/{registry.pk}/change/").content.decode()
    assert "needs the “change layer” permission" in page and "Publish version" not in page
    assert _editor_post(viewer, registry, _current_rows(theme=('"x"', False, True, False)), base=1).status_code == 403
    assert viewer.get(f"/admin/config_registry/layer/{registry.pk}/rollback/1/").status_code == 403
    assert Layer.objects.get(pk=registry.pk).current_version == 1


def test_no_page_shows_secret_plaintext_without_the_reveal_permission(editor, registry, make_layer, actor):
    version_publish(layer=registry, base_version=1, set_={"db.password": SECRET + "-2"}, actor=actor)
    urls = [
        "/admin/",
        "/admin/config_registry/layer/",
        f"/admin/config_registry/layer/{registry.pk}/change/",
        f"/admin/config_registry/layer/{registry.pk}/history/",
        f"/admin/config_registry/layer/{registry.pk}/diff/?from=0&to=2",
        f"/admin/config_registry/layer/{registry.pk}/rollback/1/",
        "/admin/config_registry/layer/preview/?environment=prod&service=chat&user=alice",
        "/admin/config_registry/auditevent/",
        "/admin/config_registry/layerversion/",
        "/admin/config_registry/keydefinition/",
    ]
    urls += [
        f"/admin/config_registry/auditevent/{pk}/change/" for pk in AuditEvent.objects.values_list("pk", flat=True)
    ]
    for url in urls:
        response = editor.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode(), url


def test_preview_as_user__values_with_layer_version_and_overrides(editor, registry, make_layer):
    make_layer("group:staff", {"theme": "dark"})
    page = editor.get(
        "/admin/config_registry/layer/preview/", {"environment": "prod", "service": "chat", "user": "alice"}
    ).content.decode()
    assert re.search(
        r"<code>theme</code></td><td><code>&quot;dark&quot;</code></td>\s*<td>group:staff v1</td>\s*<td>global v1</td>",
        page,
    )
    assert "********" in page and SECRET not in page
    assert (
        "does not exist"
        in editor.get(
            "/admin/config_registry/layer/preview/", {"environment": "prod", "service": "chat", "user": "nobody"}
        ).content.decode()
    )


def test_key_definition__invalid_schema_shown_inline__valid_one_saved_and_audited(editor, db):
    bad = editor.post(
        "/admin/config_registry/keydefinition/add/",
        {"key": "limits.max", "description": "", "schema": '{"type": "integr"}', "default": ""},
    )
    assert bad.status_code == 200 and "not a valid JSON Schema" in bad.content.decode()
    assert not KeyDefinition.objects.filter(key="limits.max").exists()
    good = editor.post(
        "/admin/config_registry/keydefinition/add/",
        {
            "key": "limits.max",
            "description": "Max",
            "schema": '{"type": "integer"}',
            "has_default": "on",
            "default": "5",
        },
    )
    assert good.status_code == 302
    assert KeyDefinition.objects.get(key="limits.max").default == 5
    assert AuditEvent.objects.filter(action="keydef.save", target="limits.max", actor="admin:editor").exists()


def test_service_token__created_shown_once_then_only_prefix__revoked(editor, db):
    response = editor.post(
        "/admin/config_registry/servicetoken/add/", {"name": "deploy-bot", "scopes": ["config:read", "chat:ticket"]}
    )
    raw = re.search(r'<pre id="token">(crt_[^<]+)</pre>', response.content.decode()).group(1)
    token = ServiceToken.objects.get(name="deploy-bot")
    assert "no-store" in response["Cache-Control"] and token.scopes == ["chat:ticket", "config:read"]
    listing = editor.get("/admin/config_registry/servicetoken/").content.decode()
    assert token.prefix in listing and raw not in listing
    assert raw not in editor.get(f"/admin/config_registry/servicetoken/{token.pk}/change/").content.decode()
    editor.post("/admin/config_registry/servicetoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_audit_log__read_only_with_filters(editor, registry):
    page = editor.get("/admin/config_registry/auditevent/?action__exact=version.publish").content.decode()
    assert re.findall(r'<td class="field-action">([^<]+)</td>', page) == ["version.publish"]
    event = AuditEvent.objects.first()
    assert editor.post(f"/admin/config_registry/auditevent/{event.pk}/delete/").status_code == 403
    assert "Save" not in editor.get(f"/admin/config_registry/auditevent/{event.pk}/change/").content.decode()


def test_create_layer__through_the_service__bad_ref_refused(editor, make_user):
    make_user("carol")
    assert (
        editor.post(
            "/admin/config_registry/layer/add/", {"ref": "user:carol", "description": "Carol", "priority": 0}
        ).status_code
        == 302
    )
    assert Layer.objects.get(level="user", name="carol").description == "Carol"
    assert AuditEvent.objects.filter(action="layer.create", actor="admin:editor").exists()
    editor.post("/admin/config_registry/layer/add/", {"ref": "user:nobody", "priority": 0})
    assert not Layer.objects.filter(name="nobody").exists()


def test_layer_details__description_and_group_priority_through_the_service(editor, make_layer, make_user):
    make_user("dana", "staff")
    group = make_layer("group:staff", {"theme": "dark"}, priority=1)
    response = editor.post(
        f"/admin/config_registry/layer/{group.pk}/change/",
        {"_details": "1", "description": "Staff members", "priority": "7"},
    )
    assert response.status_code == 302
    group.refresh_from_db()
    assert (group.description, group.priority) == ("Staff members", 7)
    assert AuditEvent.objects.filter(action="layer.update", target="group:staff", actor="admin:editor").exists()
