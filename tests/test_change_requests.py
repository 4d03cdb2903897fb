"""Four eyes (SPEC §11): a gated layer changes only through an approved change request, whatever the
path; approvals by others only, voided by edits; stale requests refused; every step audited."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from config_registry import changes, services
from config_registry.audit import Actor
from config_registry.backup import registry_export, registry_import
from config_registry.exceptions import ApprovalRequired, ChangeConflict, PermissionRefused
from config_registry.models import AuditEvent, ChangeRequest, KeyDefinition, Layer, LayerVersion

ALICE, BOB, CAROL = Actor("admin:alice"), Actor("admin:bob"), Actor("admin:carol")


@pytest.fixture
def gated(make_layer):
    """global (ungated) and environment:production requiring one approval, each at version 1."""
    make_layer("global", {"feature.x": False})
    layer = make_layer("environment:production", {"db.pool": 5, "db.password": "old-pw"}, secrets=["db.password"])
    Layer.objects.filter(pk=layer.pk).update(required_approvals=1)
    layer.refresh_from_db()
    return layer


def _versions(layer: Layer) -> int:
    return LayerVersion.objects.filter(layer=layer).count()


def _bearer(api, raw: str):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


# The gate: the services refuse every direct write -------------------------------------------------


@pytest.mark.django_db
def test_gate__direct_service_writes_to_a_gated_layer__refused_and_nothing_written(gated, make_user, actor):
    make_user("dave", "staff")
    for ref in ("group:staff", "user:dave"):
        layer = services.layer_create(ref=ref, required_approvals=2, actor=actor)
        with pytest.raises(ApprovalRequired, match=rf"layer {ref} requires approval: 2 approval"):
            services.version_publish(layer=layer, base_version=0, set_={"chat.enabled": False}, actor=actor)
        assert _versions(layer) == 0
    with pytest.raises(ApprovalRequired):
        services.version_publish(layer=gated, base_version=1, set_={"db.pool": 9}, actor=actor)
    with pytest.raises(ApprovalRequired):
        services.version_rollback(layer=gated, to_version=1, base_version=1, actor=actor)
    with pytest.raises(ApprovalRequired):
        services.layer_update(layer=gated, description="", priority=0, required_approvals=0, actor=actor)
    gated.refresh_from_db()
    assert (gated.current_version, gated.required_approvals, _versions(gated)) == (1, 1, 1)
    ungated = Layer.objects.get(level="global")
    services.version_publish(layer=ungated, base_version=1, set_={"feature.x": True}, actor=actor)
    assert _versions(ungated) == 2


@pytest.mark.django_db
def test_gate__a_group_layers_priority__changed_only_by_approval(make_user, actor):
    make_user("dave", "staff")
    layer = services.layer_create(ref="group:staff", priority=1, required_approvals=1, actor=actor)
    services.layer_update(layer=layer, description="now described", priority=1, actor=actor)  # harmless: allowed
    with pytest.raises(ApprovalRequired):
        services.layer_update(layer=layer, description="now described", priority=7, actor=actor)
    submitted = changes.settings_submit(
        layer=layer, description="now described", priority=7, required_approvals=1, actor=ALICE
    )
    assert Layer.objects.get(pk=layer.pk).priority == 1
    changes.change_approve(change=submitted.change, actor=BOB)
    assert Layer.objects.get(pk=layer.pk).priority == 7
    ungated = services.layer_create(ref="group:other", priority=1, actor=actor) if make_user("erin", "other") else None
    assert (
        changes.settings_submit(layer=ungated, description="", priority=3, required_approvals=0, actor=ALICE).change
        is None
    )
    assert Layer.objects.get(pk=ungated.pk).priority == 3


@pytest.mark.django_db
def test_gate__required_approvals_itself__lowered_only_by_approval_raised_from_zero_directly(gated, actor):
    submitted = changes.settings_submit(
        layer=gated, description=gated.description, priority=0, required_approvals=0, actor=ALICE
    )
    assert submitted.change is not None and Layer.objects.get(pk=gated.pk).required_approvals == 1
    with pytest.raises(PermissionRefused, match="author"):
        changes.change_approve(change=submitted.change, actor=Actor("user:alice"))  # the same person by the API
    changes.change_approve(change=submitted.change, actor=BOB)
    assert Layer.objects.get(pk=gated.pk).required_approvals == 0
    ungated = Layer.objects.get(level="global")
    assert (
        changes.settings_submit(layer=ungated, description="", priority=0, required_approvals=2, actor=ALICE).change
        is None
    )
    assert Layer.objects.get(pk=ungated.pk).required_approvals == 2


@pytest.mark.django_db
def test_gate__key_definitions_that_alter_gated_layers__need_their_approvals(gated, actor):
    with pytest.raises(ApprovalRequired, match="key definition db.pool requires approval"):
        services.key_definition_save(key="db.pool", schema={"type": "integer", "maximum": 3}, actor=actor)
    with pytest.raises(ApprovalRequired, match="key definition chat.motd"):  # a default reaches every context
        services.key_definition_save(key="chat.motd", default="hello", actor=actor)
    services.key_definition_save(key="chat.motd", description="only words: allowed", actor=actor)
    services.key_definition_save(key="feature.x", schema={"type": "boolean"}, actor=actor)  # only ungated holders
    submitted = changes.definition_submit(key="chat.motd", description="d", default="hello", actor=ALICE)
    assert submitted.change is not None and not KeyDefinition.objects.get(key="chat.motd").has_default
    changes.change_approve(change=submitted.change, actor=BOB)
    assert KeyDefinition.objects.get(key="chat.motd").default == "hello"


# Each write path: gated → a change request (or a refusal), ungated → as before ---------------------


@pytest.mark.django_db
def test_api_publish__gated__202_change_request_nothing_published__ungated_201(gated, api, make_token):
    _bearer(api, make_token("config:read", "config:write"))
    body = {"base_version": 1, "set": {"db.pool": 9, "db.password": "new-pw"}, "secrets": ["db.password"]}
    answer = api.post("/api/v1/layers/environment:production/versions", body, format="json")
    assert answer.status_code == 202, answer.content
    change = answer.json()
    assert change["state"] == "open" and change["required_approvals"] == 1 and change["approvals"] == []
    assert change["proposal"]["set"] == {"db.pool": 9, "db.password": "********"}
    assert {"key": "db.password", "kind": "changed", "secret": True} in change["changes"]
    assert change["impact"] == {"users": 0}
    assert _versions(gated) == 1
    stored = json.dumps(list(ChangeRequest.objects.values()), default=str) + json.dumps(
        list(AuditEvent.objects.values_list("changes", flat=True))
    )
    assert "new-pw" not in stored and "new-pw" not in answer.content.decode()  # sealed at rest, never shown
    ungated = api.post("/api/v1/layers/global/versions", {"base_version": 1, "set": {"feature.x": True}}, format="json")
    assert ungated.status_code == 201 and ungated.json()["version"] == 2


@pytest.mark.django_db
def test_api_rollback__gated__202__ungated_201(gated, api, make_token, actor):
    services.version_publish(
        layer=Layer.objects.get(level="global"), base_version=1, set_={"feature.x": True}, actor=actor
    )
    _bearer(api, make_token("config:read", "config:write"))
    answer = api.post(
        "/api/v1/layers/environment:production/rollback", {"to_version": 1, "base_version": 1}, format="json"
    )
    assert answer.status_code == 400 and "nothing to publish" in answer.json()["message"]  # checked as a rollback
    assert _versions(gated) == 1 and not ChangeRequest.objects.exists()
    answer = api.post("/api/v1/layers/global/rollback", {"to_version": 1, "base_version": 2}, format="json")
    assert answer.status_code == 201 and answer.json()["version"] == 3
    Layer.objects.filter(level="global").update(required_approvals=1)
    answer = api.post("/api/v1/layers/global/rollback", {"to_version": 2, "base_version": 3}, format="json")
    assert answer.status_code == 202 and answer.json()["kind"] == "rollback"
    assert Layer.objects.get(level="global").current_version == 3


@pytest.mark.django_db
def test_api_layer_settings__gated_priority_or_approvals__202__ungated_200(gated, api, make_token):
    _bearer(api, make_token("config:read", "config:write"))
    answer = api.patch("/api/v1/layers/environment:production", {"required_approvals": 0}, format="json")
    assert answer.status_code == 202 and answer.json()["kind"] == "settings"
    assert Layer.objects.get(pk=gated.pk).required_approvals == 1
    answer = api.patch("/api/v1/layers/global", {"required_approvals": 2}, format="json")
    assert answer.status_code == 200 and answer.json()["required_approvals"] == 2


@pytest.mark.django_db
def test_admin_editor__gated__submit_for_approval_makes_a_request__ungated_publishes(gated, client):
    User.objects.create_superuser("alice", password="pw")
    client.login(username="alice", password="pw")
    page = client.get(f"/admin/config_registry/layer/{gated.pk}/change/").content.decode()
    assert "Submit for approval" in page and "🔒 1 approval" in page
    form = {
        "form-TOTAL_FORMS": "2",
        "form-INITIAL_FORMS": "0",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-key": "db.password",
        "form-0-existing": "1",
        "form-0-was_secret": "1",
        "form-0-secret": "on",
        "form-0-value": "",
        "form-1-key": "db.pool",
        "form-1-existing": "1",
        "form-1-value": "12",
        "base_version": "1",
        "comment": "bigger pool",
        "_publish": "1",
    }
    answer = client.post(f"/admin/config_registry/layer/{gated.pk}/change/", form)
    change = ChangeRequest.objects.get()
    assert answer.status_code == 302 and answer["Location"].endswith(f"/changerequest/{change.pk}/change/")
    assert change.changes == [{"key": "db.pool", "kind": "changed", "secret": False, "before": 5, "after": 12}]
    assert _versions(gated) == 1
    ungated = Layer.objects.get(level="global")
    form = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "0",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-key": "feature.x",
        "form-0-existing": "1",
        "form-0-value": "true",
        "base_version": "1",
        "_publish": "1",
    }
    assert client.post(f"/admin/config_registry/layer/{ungated.pk}/change/", form).status_code == 302
    assert _versions(ungated) == 2


@pytest.mark.django_db
def test_admin_details_and_rollback__gated__become_requests(gated, client, actor):
    User.objects.create_superuser("alice", password="pw")
    client.login(username="alice", password="pw")
    url = f"/admin/config_registry/layer/{gated.pk}/change/"
    client.post(url, {"_details": "1", "description": "prod", "priority": "0", "required_approvals": "0"})
    assert Layer.objects.get(pk=gated.pk).required_approvals == 1
    assert ChangeRequest.objects.get().kind == "settings"
    with changes_applied_as(gated):
        services.version_publish(layer=gated, base_version=1, set_={"db.pool": 6}, actor=actor)
    client.post(f"/admin/config_registry/layer/{gated.pk}/rollback/1/", {"base_version": "2"})
    assert ChangeRequest.objects.filter(kind="rollback").count() == 1 and _versions(gated) == 2


def changes_applied_as(layer):
    """A test's way past the gate, as an approved request would open it (set-up only)."""
    return services.approved_change(services.Approved(layer.ref, None))


@pytest.mark.django_db(transaction=True)
def test_vault_write__gated__403_naming_the_approval__ungated_written(gated, asgi_server, make_token):
    import hvac
    from hvac import exceptions as vault

    client = hvac.Client(url=f"http://{asgi_server}", token=make_token("config:read", "config:write"), timeout=30)
    with pytest.raises(vault.Forbidden) as refused:
        client.secrets.kv.v2.create_or_update_secret(
            path="environment/production", secret={"db.pool": 1}, mount_point="layers"
        )
    assert refused.value.errors[0].startswith("layer environment:production requires approval: 1 approval")
    assert _versions(gated) == 1
    client.secrets.kv.v2.create_or_update_secret(path="global", secret={"feature.x": True}, mount_point="layers")
    assert Layer.objects.get(level="global").current_version == 2


@pytest.mark.django_db
def test_import_env__gated__submits_a_change_request__ungated_publishes(gated, tmp_path, capsys):
    env = tmp_path / ".env"
    env.write_text("DB_POOL=7\nDB_PASSWORD=from-env\n")
    call_command("import_env", str(env), "--layer", "environment:production")
    out = capsys.readouterr().out
    assert "requires 1 approval(s): submitted as change request #" in out and "from-env" not in out
    assert _versions(gated) == 1 and ChangeRequest.objects.get().changes[0]["key"] == "db.password"
    call_command("import_env", str(env), "--layer", "global")
    assert "Published global version 2." in capsys.readouterr().out


@pytest.mark.django_db
def test_import_config__into_a_gated_layer_or_its_definitions__refused_nothing_written(gated, actor):
    exported = registry_export(actor=actor)
    assert {layer["ref"]: layer["required_approvals"] for layer in exported["layers"]}["environment:production"] == 1
    with pytest.raises(Exception, match="environment:production requires approval: 1"):
        registry_import(data=exported, actor=actor)
    definition = {"key": "chat.motd", "has_default": True, "default": "hi", "schema": None, "secret": False}
    only_new = {**exported, "layers": [], "key_definitions": [definition]}
    with pytest.raises(Exception, match="key definition chat.motd requires approval"):
        registry_import(data=only_new, actor=actor)
    assert not KeyDefinition.objects.filter(key="chat.motd").exists()
    Layer.objects.filter(pk=gated.pk).update(required_approvals=0)  # ungated: the same import of a definition
    registry_import(data=only_new, actor=actor)
    assert KeyDefinition.objects.get(key="chat.motd").default == "hi"


@pytest.mark.django_db
def test_import_config_command__gated_layer__command_error(gated, actor, tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(registry_export(actor=actor)))
    with pytest.raises(CommandError, match="requires approval"):
        call_command("import_config", str(path))


# Reviewing --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_approval__the_author_never__another_principal_applies_it_with_approvers_recorded(gated, api, make_token):
    author = make_token("config:read", "config:write", "changes:approve", name="deployer")
    _bearer(api, author)
    made = api.post(
        "/api/v1/layers/environment:production/versions", {"base_version": 1, "set": {"db.pool": 8}}, format="json"
    )
    change_id = made.json()["id"]
    refused = api.post(f"/api/v1/changes/{change_id}/approve")
    assert refused.status_code == 403 and "author" in refused.json()["message"]
    _bearer(api, make_token("config:read", name="reader"))
    assert api.post(f"/api/v1/changes/{change_id}/approve").status_code == 403  # lacks changes:approve
    _bearer(api, make_token("config:read", "changes:approve", name="reviewer"))
    approved = api.post(f"/api/v1/changes/{change_id}/approve")
    assert approved.status_code == 200, approved.content
    assert approved.json()["state"] == "applied" and approved.json()["applied_version"] == 2
    version = LayerVersion.objects.get(layer=gated, number=2)
    assert (version.author, version.approved_by, version.change_request) == (
        "token:deployer",
        ["token:reviewer"],
        change_id,
    )
    shown = api.get("/api/v1/layers/environment:production/versions").json()[-1]
    assert shown["approved_by"] == ["token:reviewer"] and shown["change_request"] == change_id


@pytest.mark.django_db
def test_edit__voids_approvals__and_only_its_author_edits(gated):
    Layer.objects.filter(pk=gated.pk).update(required_approvals=2)
    change = changes.version_submit(layer=gated, base_version=1, set_={"db.pool": 8}, actor=ALICE).change
    changes.change_approve(change=change, actor=BOB)
    assert change.approvals.count() == 1
    with pytest.raises(PermissionRefused, match="only the author"):
        changes.change_edit(change=change, actor=BOB, set={"db.pool": 99})
    edited = changes.change_edit(change=change, actor=ALICE, set={"db.pool": 99})
    assert edited.approvals.count() == 0 and edited.changes[0]["after"] == 99
    event = AuditEvent.objects.filter(action="change.edit").get()
    assert event.changes["voided_approvals"] == ["admin:bob"]
    changes.change_approve(change=edited, actor=BOB)
    applied = changes.change_approve(change=edited, actor=CAROL)
    assert applied.state == "applied" and LayerVersion.objects.get(layer=gated, number=2).approved_by == [
        "admin:bob",
        "admin:carol",
    ]


@pytest.mark.django_db
def test_stale__refused_with_409__rebased_by_editing(gated, api, make_token):
    first = changes.version_submit(layer=gated, base_version=1, set_={"db.pool": 8}, actor=ALICE).change
    second = changes.version_submit(layer=gated, base_version=1, set_={"db.pool": 9}, actor=ALICE).change
    changes.change_approve(change=first, actor=BOB)  # applied: production is at version 2
    _bearer(api, make_token("config:read", "config:write", "changes:approve", name="reviewer"))
    shown = api.get(f"/api/v1/changes/{second.pk}").json()
    assert shown["stale"] is True
    for step in ("approve", "apply"):
        refused = api.post(f"/api/v1/changes/{second.pk}/{step}")
        assert refused.status_code == 409 and refused.json()["stale"] is True
        assert "rebase it by editing" in refused.json()["message"]
    rebased = changes.change_edit(change=second, actor=ALICE, base_version=2)
    assert rebased.changes == [{"key": "db.pool", "kind": "changed", "secret": False, "before": 8, "after": 9}]
    assert api.post(f"/api/v1/changes/{second.pk}/approve").json()["state"] == "applied"
    assert gated.versions.order_by("number").last().number == 3


@pytest.mark.django_db
def test_reject__closes_it__nothing_applied_and_no_more_steps(gated):
    change = changes.version_submit(layer=gated, base_version=1, set_={"db.pool": 8}, actor=ALICE).change
    changes.change_reject(change=change, actor=BOB, reason="not on a Friday")
    with pytest.raises(ChangeConflict, match="is rejected"):
        changes.change_approve(change=change, actor=CAROL)
    assert _versions(gated) == 1


@pytest.mark.django_db
def test_audit__every_step_searchable_by_change_request_id(gated, api, make_token, client):
    change = changes.version_submit(layer=gated, base_version=1, set_={"db.pool": 8}, actor=ALICE).change
    changes.change_edit(change=change, actor=ALICE, comment="pool of eight")
    changes.change_approve(change=change, actor=BOB)
    changes.version_submit(layer=gated, base_version=2, set_={"db.pool": 1}, actor=ALICE)  # another request
    _bearer(api, make_token("audit:read"))
    events = api.get(f"/api/v1/audit?change_request={change.pk}").json()["results"]
    assert [event["action"] for event in events] == [
        "change.apply",
        "version.publish",
        "change.approve",
        "change.edit",
        "change.create",
    ]
    assert events[1]["changes"]["approved_by"] == ["admin:bob"]
    User.objects.create_superuser("auditor", password="pw")
    client.login(username="auditor", password="pw")
    page = client.get(f"/admin/config_registry/auditevent/?q=change:{change.pk}").content.decode()
    assert page.count("version.publish") >= 1 and "5 audit events" in page


@pytest.mark.django_db
def test_api_changes__list_filters_and_edit_and_reject(gated, api, make_token):
    _bearer(api, make_token("config:read", "config:write", name="writer"))
    made = api.post(
        "/api/v1/layers/environment:production/versions", {"base_version": 1, "set": {"db.pool": 8}}, format="json"
    ).json()
    assert [c["id"] for c in api.get("/api/v1/changes?state=open").json()] == [made["id"]]
    assert api.get("/api/v1/changes?state=applied").json() == []
    edited = api.patch(f"/api/v1/changes/{made['id']}", {"set": {"db.pool": 4}, "comment": "four"}, format="json")
    assert edited.status_code == 200 and edited.json()["comment"] == "four"
    bad = api.patch(f"/api/v1/changes/{made['id']}", {"to_version": 1}, format="json")
    assert bad.status_code == 400 and "cannot be edited" in bad.json()["message"]
    assert api.get("/api/v1/changes/999").status_code == 404
    _bearer(api, make_token("config:read", "changes:approve", name="reviewer"))
    rejected = api.post(f"/api/v1/changes/{made['id']}/reject", {"reason": "no"}, format="json")
    assert rejected.json()["state"] == "rejected" and rejected.json()["decided_by"] == "token:reviewer"
    limited = make_token("config:read", environments=["staging"], name="staging-only")
    _bearer(api, limited)
    assert api.get("/api/v1/changes").json() == []
    assert api.get(f"/api/v1/changes/{made['id']}").status_code == 403


# Scheduling (time controlled: `now` is given, never slept) -----------------------------------------


@pytest.mark.django_db
def test_scheduled__applied_at_its_time_and_not_before(gated, actor):
    at = timezone.now() + timedelta(hours=2)
    change = changes.version_submit(layer=gated, base_version=1, set_={"db.pool": 8}, publish_at=at, actor=ALICE).change
    changes.change_approve(change=change, actor=BOB)  # approved, but not yet due
    assert ChangeRequest.objects.get(pk=change.pk).state == "open"
    with pytest.raises(ChangeConflict, match="is scheduled for"):
        changes.change_apply(change=change, actor=BOB)
    assert changes.changes_apply_due(now=at - timedelta(seconds=1)) == []
    assert _versions(gated) == 1
    applied = changes.changes_apply_due(now=at)
    assert [c.pk for c in applied] == [change.pk] and _versions(gated) == 2
    assert AuditEvent.objects.filter(action="change.apply", actor="scheduler").count() == 1
    assert changes.changes_apply_due(now=at + timedelta(hours=1)) == []  # once


@pytest.mark.django_db
def test_scheduled__on_an_ungated_layer__a_timed_publish_without_approvals(make_layer):
    layer = make_layer("global", {"feature.x": False})
    at = timezone.now() + timedelta(minutes=5)
    change = changes.version_submit(
        layer=layer, base_version=1, set_={"feature.x": True}, publish_at=at, actor=ALICE
    ).change
    assert change.layer.required_approvals == 0 and _versions(layer) == 1
    changes.changes_apply_due(now=at)
    assert _versions(layer) == 2


@pytest.mark.django_db
def test_scheduled__unapproved_waits_silently__stale_recorded_once(gated, actor):
    at = timezone.now() + timedelta(minutes=1)
    waiting = changes.version_submit(
        layer=gated, base_version=1, set_={"db.pool": 8}, publish_at=at, actor=ALICE
    ).change
    assert changes.changes_apply_due(now=at) == [] and not AuditEvent.objects.filter(action="change.apply_failed")
    changes.change_approve(change=waiting, actor=BOB)
    with changes_applied_as(gated):
        services.version_publish(layer=gated, base_version=1, set_={"db.pool": 2}, actor=actor)
    changes.changes_apply_due(now=at)
    changes.changes_apply_due(now=at + timedelta(seconds=5))
    assert "stale" in ChangeRequest.objects.get(pk=waiting.pk).last_error
    assert AuditEvent.objects.filter(action="change.apply_failed").count() == 1


@pytest.mark.django_db
def test_run_scheduler_once__applies_due_and_beats(gated, capsys):
    change = changes.version_submit(
        layer=gated, base_version=1, set_={"db.pool": 8}, publish_at=timezone.now() + timedelta(days=1), actor=ALICE
    ).change
    changes.change_approve(change=change, actor=BOB)
    ChangeRequest.objects.filter(pk=change.pk).update(publish_at=timezone.now() - timedelta(seconds=1))  # its time came
    with pytest.raises(CommandError, match="no scheduler has run"):
        call_command("run_scheduler", "--check")
    call_command("run_scheduler", "--once")
    assert f"applied change request #{change.pk} to environment:production" in capsys.readouterr().out
    assert _versions(gated) == 2
