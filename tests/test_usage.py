"""Usage (which token reads which context, and so which keys are still read): counted in the process,
written once per interval rather than per request, shown in key search, the key definitions list (with
"never read in 30 days") and the token list."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from config_registry.models import ContextUsage, ServiceToken
from config_registry.usage import USAGE, key_usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(make_layer, actor):
    from config_registry.services import key_definition_save

    User.objects.create(username="alice")
    make_layer("global", {"chat.max": 3, "log.level": "info"})
    make_layer("service:billing", {"billing.currency": "EUR"})
    make_layer("user:alice", {"chat.theme": "dark"})
    for key in ("chat.max", "billing.currency", "unused.flag"):
        key_definition_save(key=key, description=f"about {key}", actor=actor)


def _resolve(api, token, **context):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/resolve", context).status_code == 200


def test_usage__counted_in_memory__written_per_interval_not_per_request(api, registry, make_token, settings):
    chat, billing = make_token("config:read", name="chat-svc"), make_token("config:read", name="billing-svc")
    for _ in range(3):
        _resolve(api, chat, environment="production", service="chat", user="alice")
    _resolve(api, billing, environment="production", service="billing")
    assert ContextUsage.objects.count() == 0  # nothing written per request
    assert USAGE.flush() == 2
    rows = {(row.token.name, row.service, row.user): row.served for row in ContextUsage.objects.all()}
    assert rows == {("chat-svc", "chat", "alice"): 3, ("billing-svc", "billing", ""): 1}
    settings.USAGE_FLUSH_SECONDS = 0  # due at once: the answering request writes
    _resolve(api, billing, environment="production", service="billing")
    assert ContextUsage.objects.get(token__name="billing-svc").served == 2

    uses = key_usage()
    assert uses["chat.theme"].tokens == {"chat-svc"} and uses["chat.theme"].served == 3
    assert uses["chat.max"].tokens == {"chat-svc", "billing-svc"} and uses["chat.max"].served == 5
    assert "billing.currency" in uses and "unused.flag" not in uses
    ContextUsage.objects.filter(token__name="billing-svc").update(last_served_at=timezone.now() - timedelta(days=40))
    assert "billing.currency" not in key_usage(since=timezone.now() - timedelta(days=30))


def test_usage__in_key_search_the_key_list_and_the_token_list(api, admin_client, registry, make_token):
    chat = make_token("config:read", name="chat-svc")
    _resolve(api, chat, environment="production", service="chat")
    USAGE.flush()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {chat}")
    usage = api.get("/api/v1/keys/chat.max").json()["usage"]
    assert usage["tokens"] == ["chat-svc"] and usage["served"] == 1
    assert api.get("/api/v1/keys/billing.currency").json()["usage"] is None
    keys = admin_client.get("/admin/config_registry/keydefinition/").content.decode()
    assert "by chat-svc" in keys and "never (since counting began)" in keys
    never = admin_client.get("/admin/config_registry/keydefinition/", {"read_in_30_days": "no"}).content.decode()
    assert "about unused.flag" in never and "about billing.currency" in never and "about chat.max" not in never
    tokens = admin_client.get("/admin/config_registry/servicetoken/").content.decode()
    assert "production/chat (1," in tokens
    assert ServiceToken.objects.filter(name="chat-svc").exists()
