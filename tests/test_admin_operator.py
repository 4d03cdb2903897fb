"""The admin's rough edges, fixed: registry writes in "Recent actions" (LogEntry), the identity first on
the add-layer form, scopes and limits as words in the token list, audit changes readable and linked."""

import pytest
from django.contrib.admin.models import LogEntry

from config_registry.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_admin_writes__in_recent_actions(admin_client, make_layer, make_token):
    layer = make_layer("environment:staging", {"chat.max": 3})
    form = {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000",
        "form-0-key": "chat.max", "form-0-value": "4", "form-0-existing": "1", "base_version": "1",
        "comment": "more room",
    }  # fmt: skip
    response = admin_client.post(f"/admin/config_registry/layer/{layer.pk}/change/", form)
    assert response.status_code == 302
    entry = LogEntry.objects.latest("action_time")
    assert entry.object_repr == str(layer) and "Published version 2: more room" in entry.get_change_message()
    index = admin_client.get("/admin/").content.decode()
    assert "Recent actions" in index and str(layer) in index


def test_add_layer_form__ref_first(admin_client):
    page = admin_client.get("/admin/config_registry/layer/add/").content.decode()
    assert page.index('name="ref"') < page.index('name="description"') < page.index('name="priority"')
    assert "Group layers only" in page


def test_token_list_and_audit__readable(admin_client, make_layer, make_token):
    make_token("config:read", "secrets:read", environments=["staging"], name="reader")
    tokens = admin_client.get("/admin/config_registry/servicetoken/").content.decode()
    assert "config:read, secrets:read" in tokens and "environments staging" in tokens
    assert "[&quot;config:read&quot;" not in tokens
    layer = make_layer("environment:staging", {"chat.max": 3})
    event = AuditEvent.objects.filter(target=layer.ref).latest("seq")
    page = admin_client.get(f"/admin/config_registry/auditevent/{event.pk}/change/").content.decode()
    assert f'href="/admin/config_registry/layer/{layer.pk}/change/"' in page
    assert '<pre class="audit-changes">' in page


def test_editor__inherited_values_and_a_bare_word_answered_with_its_quoted_form(admin_client, make_layer, actor):
    from config_registry.services import key_definition_save

    make_layer("global", {"chat.max": 3, "db.password": "g"}, secrets=["db.password"])
    layer = make_layer("environment:staging", {"chat.max": 5, "chat.title": "Lobby", "db.password": "s"},
                       secrets=["db.password"])  # fmt: skip
    key_definition_save(key="chat.title", default="Chat", actor=actor)
    page = admin_client.get(f"/admin/config_registry/layer/{layer.pk}/change/").content.decode()
    assert "without this layer" in page and "<code>3</code> <small>global@1</small>" in page
    assert "<code>&quot;Chat&quot;</code> <small>default</small>" in page and "Add another key" in page
    assert '"g"' not in page and "&quot;g&quot;" not in page  # the secret below stays masked
    form = {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "0", "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000",
        "form-0-key": "chat.theme", "form-0-value": "blue", "base_version": "1",
    }  # fmt: skip
    answer = admin_client.post(f"/admin/config_registry/layer/{layer.pk}/change/", form).content.decode()
    assert "as a string, write it in double quotes: &quot;blue&quot;" in answer


def test_version_page__shows_its_entries_secrets_masked(admin_client, make_layer):
    from config_registry.models import LayerVersion

    layer = make_layer("environment:staging", {"chat.max": 5, "db.password": "hunter2"}, secrets=["db.password"])
    version = LayerVersion.objects.get(layer=layer, number=1)
    page = admin_client.get(f"/admin/config_registry/layerversion/{version.pk}/change/").content.decode()
    assert "<code>chat.max</code></td><td><code>5</code>" in page and "<code>secret</code>" in page
    assert "hunter2" not in page


def test_token_pages__a_date_picker_and_a_created_page_that_says_how_to_use_it(admin_client):
    form = admin_client.get("/admin/config_registry/servicetoken/add/").content.decode()
    assert 'type="datetime-local"' in form and 'class="module aligned"' in form
    created = admin_client.post(
        "/admin/config_registry/servicetoken/add/",
        {"name": "deploy", "scopes": ["config:read"], "environments": "staging", "expires_at": "2030-01-31T12:00"},
    )
    page = created.content.decode()
    assert created.status_code == 200 and "environments staging" in page
    assert "Authorization: Bearer $TOKEN" in page and "environment=staging" in page
    assert "Jan. 31, 2030" in page


def test_token_list__filtered_by_state(admin_client, make_token):
    from datetime import timedelta

    from django.utils import timezone

    from config_registry.models import ServiceToken

    for name in ("live", "old", "gone"):
        make_token("config:read", name=name)
    ServiceToken.objects.filter(name="old").update(expires_at=timezone.now() - timedelta(days=1))
    ServiceToken.objects.filter(name="gone").update(revoked_at=timezone.now())
    for state, shown in (("active", "live"), ("expired", "old"), ("revoked", "gone")):
        page = admin_client.get("/admin/config_registry/servicetoken/", {"state": state}).content.decode()
        names = {name for name in ("live", "old", "gone") if f">{name}<" in page}
        assert names == {shown}, (state, names)
