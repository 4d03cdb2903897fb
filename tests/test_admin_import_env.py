"""The admin's .env upload (SPEC §10): a preview of what changes, secrets only as changed and never in the
page, then one publish like import_env's; a stale preview or a tampered plan imports nothing."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from config_registry.models import AuditEvent
from config_registry.selectors import layer_get, version_states
from tests.conftest import SCREENSHOTS

pytestmark = pytest.mark.django_db

DOTENV = (
    b'DATABASE_HOST=db2.internal\nDATABASE_PASSWORD="correct horse"\nFEATURE_NEW=true\nPIN=4321\nDATABASE_HOST=db3\n'
)


@pytest.fixture
def layer(make_layer):
    return make_layer(
        "environment:staging",
        {"database.host": "db.internal", "database.password": "old pass"},
        secrets=["database.password"],
    )


def _preview(admin_client, layer, content: bytes = DOTENV, **fields):
    url = reverse("admin:config_registry_layer_import_env", args=[layer.pk])
    upload = SimpleUploadedFile("service.env", content, content_type="text/plain")
    return admin_client.post(url, {"file": upload, "secret_names": "PIN", **fields})


def test_admin_import_env__preview_then_import(admin_client, layer):
    preview = _preview(admin_client, layer)
    page = preview.content.decode()
    assert preview.status_code == 200 and "what changes from version 1" in page
    assert "database.host" in page and "db3" in page and "feature.new" in page
    assert "secret changed (value not shown)" in page and "secret added (value not shown)" in page  # password, pin
    assert "DATABASE_HOST is set on lines 1 and 5" in page
    for plaintext in ("correct horse", "4321", "old pass"):
        assert plaintext not in page
    sealed = preview.context["sealed"]
    url = reverse("admin:config_registry_layer_import_env", args=[layer.pk])
    done = admin_client.post(url, {"sealed": sealed, "base_version": "1", "comment": "from the old .env"})
    assert done.status_code == 302
    layer = layer_get("environment:staging")
    states = version_states(layer, 2)
    assert {key: state.value for key, state in states.items()} == {
        "database.host": "db3",
        "database.password": "correct horse",
        "feature.new": True,
        "pin": 4321,
    }
    assert {key for key, state in states.items() if state.secret} == {"database.password", "pin"}
    event = AuditEvent.objects.filter(action="version.publish", target=layer.ref).latest("id")
    assert event.actor.startswith("admin:") and "correct horse" not in str(event.changes)


def test_admin_import_env__a_stale_preview_or_a_tampered_plan__nothing_imported(admin_client, layer, actor):
    from config_registry.services import version_publish

    sealed = _preview(admin_client, layer).context["sealed"]
    version_publish(layer=layer, base_version=1, set_={"database.host": "moved"}, actor=actor)
    url = reverse("admin:config_registry_layer_import_env", args=[layer.pk])
    stale = admin_client.post(url, {"sealed": sealed, "base_version": "1"}, follow=True)
    assert "Nothing imported" in stale.content.decode() and layer_get(layer.ref).current_version == 2
    again = admin_client.post(url, {"sealed": sealed, "base_version": "2"}, follow=True)  # sealed for version 1
    assert "Nothing imported" in again.content.decode() and layer_get(layer.ref).current_version == 2
    tampered = admin_client.post(url, {"sealed": sealed[:-4] + "AAAA", "base_version": "2"}, follow=True)
    assert "Nothing imported" in tampered.content.decode() and layer_get(layer.ref).current_version == 2


def test_admin_import_env__bad_uploads__said_on_the_form(admin_client, layer):
    empty = _preview(admin_client, layer, content=b"# nothing here\n")
    assert "holds no variable to import" in empty.content.decode()
    binary = _preview(admin_client, layer, content=b"\xff\xfe\x00")
    assert "not UTF-8 text" in binary.content.decode()
    mapping = _preview(admin_client, layer, names="not a mapping")
    assert "is not NAME=key" in mapping.content.decode()


@pytest.mark.django_db(transaction=True)
def test_admin_import_env_in_chromium__upload_preview_import(
    server_processes, chromium, settings, make_layer, tmp_path
):
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    User.objects.create(username="root", password=make_password("pw-root"), is_staff=True, is_superuser=True)
    layer = make_layer("environment:staging", {"database.host": "db.internal"})
    env_file = tmp_path / "service.env"
    env_file.write_bytes(DOTENV)
    address, _ = server_processes()
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"http://{address}/admin/login/?next=/admin/config_registry/layer/{layer.pk}/import-env/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-root")
    page.click("input[type=submit]")
    page.set_input_files("#id_file", str(env_file))
    page.click("input[name=_preview]")
    page.wait_for_selector("table.registry-diff")
    assert "correct horse" not in page.content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "admin-import-env-preview.png", full_page=True)
    page.click("input[name=_import]")
    page.wait_for_selector(".messagelist .success")
    assert "Imported into environment:staging: version 2" in page.inner_text(".messagelist")
    assert layer_get("environment:staging").current_version == 2
