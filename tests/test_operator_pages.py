"""What an operator meets first: the landing page at /, and a resolve that says when an environment or
service name matches no published layer (a typo answers 200 with global values, so it must be told)."""

import io
import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(make_layer):
    make_layer("global", {"chat.max": 3})
    make_layer("environment:production", {"chat.max": 4})
    make_layer("environment:staging", {"chat.max": 5})
    make_layer("service:chat", {"chat.title": "Lobby"})


def test_landing_page__links_what_the_server_offers_and_its_version(client):
    from config_registry import __version__

    page = client.get("/")
    text = page.content.decode()
    assert page.status_code == 200 and f"version {__version__}" in text
    for link in ("/admin/", "/api/v1/docs", "/api/v1/docs/vault", "/api/v1/docs/spring", "/api/v1/docs/ofrep"):
        assert f'href="{link}"' in text
    assert 'href="/chat/"' in text and 'href="/readyz"' in text
    assert client.get("/admin/").status_code == 302  # and the admin's "View site" lands here, not on a 404


def test_resolve__a_name_no_layer_has__warned_in_the_body_and_a_header(api, registry, make_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('config:read')}")
    typo = api.get("/api/v1/resolve", {"environment": "prodution", "service": "chat"})
    answer = typo.json()
    assert typo.status_code == 200 and answer["values"]["chat.max"] == 3  # global: rarely what was meant
    assert answer["warnings"] == [
        "no layer for environment 'prodution': only what applies everywhere resolves here; "
        "did you mean 'production'? known environments: production, staging"
    ]
    assert typo["Warning"].startswith("299 config-registry \"no layer for environment 'prodution'")
    both = api.get("/api/v1/resolve", {"environment": "qa", "service": "chta"}).json()["warnings"]
    assert len(both) == 2 and "known environments: production, staging" in both[0] and "'chat'?" in both[1]
    right = api.get("/api/v1/resolve", {"environment": "production", "service": "chat"})
    assert "warnings" not in right.json() and "Warning" not in right
    again = api.get("/api/v1/resolve", {"environment": "prodution", "service": "chat"}, HTTP_IF_NONE_MATCH=typo["ETag"])
    assert again.status_code == 304 and again["Warning"] == typo["Warning"]


def test_resolve_config__the_same_warning_on_stderr(registry):
    out, err = io.StringIO(), io.StringIO()
    call_command("resolve_config", "--environment", "prodution", "--service", "chat", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["values"]["chat.max"] == 3
    assert "warning: no layer for environment 'prodution'" in err.getvalue() and "'production'?" in err.getvalue()
