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
