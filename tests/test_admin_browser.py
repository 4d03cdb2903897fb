"""The admin in real Chromium: sign in, edit a layer, publish, see the diff, roll back."""

import pytest

from config_registry.models import Layer
from config_registry.selectors import version_states
from tests.conftest import SCREENSHOTS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_user(settings, make_layer):
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    # The server process checks passwords with the real hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    User.objects.create(username="root", password=make_password("pw-root"), is_staff=True, is_superuser=True)
    return make_layer(
        "environment:production",
        {"chat.rate_limit_per_minute": 30, "db.password": "hunter2-secret"},
        secrets=["db.password"],
    )


def _signed_in(chromium, address: str, next_path: str, ready: str, width: int = 1200, height: int = 800):
    """A page of the admin signed in as root, at `next_path` once `ready` shows."""
    page = chromium.new_page(viewport={"width": width, "height": height})
    page.goto(f"http://{address}/admin/login/?next={next_path}")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-root")
    page.click("input[type=submit]")
    page.wait_for_selector(ready)
    return page


def test_admin_in_chromium__edit_publish_diff_rollback(admin_user, server_processes, chromium):
    address, _ = server_processes()
    layer = admin_user
    page = _signed_in(chromium, address, f"/admin/config_registry/layer/{layer.pk}/change/", "#layer-editor")
    assert "hunter2-secret" not in page.content()

    rate = page.locator("tr:has(code:text-is('chat.rate_limit_per_minute')) textarea")
    rate.fill("45")
    new_key = page.locator("tr.new input[name$='-key']").first
    new_key.fill("feature.search")
    page.locator("tr.new textarea").first.fill("true")
    page.fill("#id_comment", "faster chat in production")
    page.click("input[name=_preview]")
    page.wait_for_selector(".impact")
    assert "every user in environment production" in page.inner_text(".impact")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "admin-layer-editor.png", full_page=True)
    # The preview keeps every typed value: a plain value is still plain and still the new one.
    assert rate.input_value() == "45"
    page.click("input[name=_publish]")
    page.wait_for_selector("text=Published environment:production version 2")
    assert page.inner_text("#current-version") == "2"

    page.click("text=History")
    page.click("#versions tr:has-text('faster chat') >> text=diff")
    page.wait_for_selector(".registry-diff")
    diff = page.inner_text(".registry-diff")
    assert "chat.rate_limit_per_minute" in diff and "45" in diff and "feature.search" in diff
    page.screenshot(path=SCREENSHOTS / "admin-layer-diff.png", full_page=True)

    page.click("text=History")
    page.click("text=roll back to this")
    page.wait_for_selector("text=Roll environment:production back to version 1?")
    page.click("input[value='Yes, roll back']")
    page.wait_for_selector("text=published version 3")
    layer.refresh_from_db()
    assert layer.current_version == 3 == Layer.objects.get(pk=layer.pk).current_version
    assert version_states(layer, 3) == version_states(layer, 1)


def test_admin_in_chromium__operator_pages(admin_user, server_processes, chromium, make_layer, make_token):
    make_layer("global", {"chat.rate_limit_per_minute": 20, "chat.welcome_message": "Hi"})
    make_token("config:read", "metrics:read", environments=["production"], name="prometheus")
    address, _ = server_processes()
    layer = admin_user
    page = _signed_in(chromium, address, "/admin/config_registry/layer/", "#result_list", width=1280, height=860)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "admin-layer-list.png", full_page=True)
    refs = page.locator("#result_list tbody tr th").all_inner_texts()
    assert refs == ["global", "environment:production"]  # resolution order

    page.goto(f"http://{address}/admin/config_registry/layer/{layer.pk}/change/")
    page.wait_for_selector("#layer-editor")
    assert "global@1" in page.inner_text("tr:has(code:text-is('chat.rate_limit_per_minute')) td.inherited")
    before = page.locator("#layer-editor tr.new").count()
    page.click("#add-row")
    page.click("#add-row")
    assert page.locator("#layer-editor tr.new").count() == before + 2
    page.locator("tr.new input[name$='-key']").last.fill("feature.search")
    page.locator("tr.new textarea").last.fill("true")
    page.click("input[name=_preview]")
    page.wait_for_selector(".impact")
    assert "feature.search" in page.inner_text(".impact")
    page.screenshot(path=SCREENSHOTS / "admin-editor-inherited.png", full_page=True)

    page.goto(f"http://{address}/admin/config_registry/layer/keys/?key=chat.rate_limit_per_minute")
    page.wait_for_selector("#key-settings")
    page.screenshot(path=SCREENSHOTS / "admin-key-search.png", full_page=True)
    page.goto(f"http://{address}/admin/config_registry/layer/compare/?left=global&right=environment:production")
    page.wait_for_selector("#compared")
    assert "chat.rate_limit_per_minute" in page.inner_text("#compared")
    page.screenshot(path=SCREENSHOTS / "admin-compare.png", full_page=True)
    page.goto(f"http://{address}/admin/config_registry/servicetoken/")
    page.wait_for_selector("#result_list")
    assert "config:read, metrics:read" in page.inner_text("#result_list")
    page.screenshot(path=SCREENSHOTS / "admin-token-list.png", full_page=True)
    page.goto(f"http://{address}/admin/config_registry/servicetoken/add/")
    page.fill("#id_name", "deploy-bot")
    page.check("input[value='config:read']")
    page.fill("#id_environments", "production")
    page.fill("#id_expires_at", "2030-01-31T12:00")
    page.screenshot(path=SCREENSHOTS / "admin-token-add.png", full_page=True)
    page.click("input[type=submit]")
    page.wait_for_selector("#token-usage")
    assert "environments production" in page.inner_text("#token-summary")
    page.screenshot(path=SCREENSHOTS / "admin-token-created.png", full_page=True)
