"""Four eyes in real Chromium: one admin submits a change to a gated layer, a second approves it on
the request's page, and the change is live for a service reading the registry."""

import json
import urllib.request

import pytest

from config_registry.models import ChangeRequest, Layer
from tests.conftest import SCREENSHOTS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_admins(settings, make_layer):
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the server's own
    for name in ("alice", "bob"):
        User.objects.create(username=name, password=make_password(f"pw-{name}"), is_staff=True, is_superuser=True)
    layer = make_layer("environment:production", {"chat.rate_limit_per_minute": 30})
    Layer.objects.filter(pk=layer.pk).update(required_approvals=1)
    return layer


def _signed_in(chromium, address: str, who: str, next_path: str, ready: str):
    page = chromium.new_page(viewport={"width": 1200, "height": 800})  # a context of its own: its own session
    page.goto(f"http://{address}/admin/login/?next={next_path}")
    page.fill("#id_username", who)
    page.fill("#id_password", f"pw-{who}")
    page.click("input[type=submit]")
    page.wait_for_selector(ready)
    return page


def _resolved(address: str, token: str) -> dict:
    request = urllib.request.Request(
        f"http://{address}/api/v1/resolve?environment=production&service=chat",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["values"]


def test_four_eyes_in_chromium__alice_submits_bob_approves_it_goes_live(
    two_admins, server_processes, chromium, make_token
):
    address, _ = server_processes()
    token = make_token("config:read")
    layer = two_admins
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    alice = _signed_in(chromium, address, "alice", f"/admin/config_registry/layer/{layer.pk}/change/", "#layer-editor")
    assert "1 approval" in alice.inner_text(".layer-meta")  # the gated layer's badge
    alice.locator("tr:has(code:text-is('chat.rate_limit_per_minute')) textarea").fill("45")
    alice.fill("#id_comment", "faster chat")
    alice.click("input[name=_publish][value='Submit for approval']")
    alice.wait_for_selector("#change-state")
    change = ChangeRequest.objects.get()
    assert "Submitted for approval as change request" in alice.content()
    assert "0 of 1" in alice.inner_text("#approval-count")
    assert "You wrote this request" in alice.content() and alice.locator("input[name=_approve]").count() == 0
    alice.screenshot(path=SCREENSHOTS / "change-request-submitted.png", full_page=True)
    assert _resolved(address, token)["chat.rate_limit_per_minute"] == 30  # nothing live yet

    bob = _signed_in(chromium, address, "bob", "/admin/config_registry/changerequest/", "#result_list")
    bob.set_viewport_size({"width": 1500, "height": 800})
    row = bob.locator("#result_list tbody tr").first
    assert "~chat.rate_limit_per_minute" in row.inner_text() and "0 / 1" in row.inner_text()
    bob.screenshot(path=SCREENSHOTS / "change-request-list.png", full_page=True)
    row.locator("a", has_text=f"#{change.pk}").click()
    bob.wait_for_selector("#change-diff")
    assert "30" in bob.inner_text("#change-diff") and "45" in bob.inner_text("#change-diff")
    bob.screenshot(path=SCREENSHOTS / "change-request-page.png", full_page=True)
    bob.click("input[name=_approve]")
    bob.wait_for_selector(f"text=Applied change request #{change.pk}: environment:production is at version 2.")
    assert "Applied" in bob.inner_text("#change-state")
    bob.screenshot(path=SCREENSHOTS / "change-request-applied.png", full_page=True)

    assert _resolved(address, token)["chat.rate_limit_per_minute"] == 45  # live
    version = layer.versions.get(number=2)
    assert (version.author, version.approved_by) == ("admin:alice", ["admin:bob"])
