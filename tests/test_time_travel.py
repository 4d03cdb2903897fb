"""Time travel (SPEC §8): what a context resolved to at a past revision, exactly — layer versions,
group memberships, group priorities and key-definition defaults all as they were then."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone

from config_registry.selectors import config_resolve, registry_revision
from config_registry.services import key_definition_save, layer_update, version_publish

API = "/api/v1/resolve"
ALICE = {"environment": "prod", "service": "chat", "user": "alice"}


@pytest.fixture
def registry(make_layer, make_user):
    Group.objects.create(name="staff")
    Group.objects.create(name="ops")
    make_user("alice", "staff")
    make_layer("global", {"theme": "grey", "db.password": "one"}, secrets=["db.password"])
    make_layer("group:staff", {"theme": "staff-blue"}, priority=1)
    make_layer("group:ops", {"theme": "ops-red"}, priority=2)


def _at(revision: int, **context) -> dict:
    return config_resolve(**(context or ALICE), revision=revision).values


def _publish(ref: str, values: dict, actor) -> None:
    from config_registry.selectors import layer_get

    layer = layer_get(ref)
    version_publish(layer=layer, base_version=layer.current_version, set_=values, actor=actor)


def test_revision__after_publishes__each_revision_answers_what_it_was(registry, actor):
    before = registry_revision()
    _publish("global", {"theme": "green", "db.password": "two"}, actor)
    assert _at(before)["theme"] == "staff-blue"
    _publish("group:staff", {"theme": "staff-black"}, actor)
    assert _at(before)["theme"] == "staff-blue"
    assert _at(registry_revision())["theme"] == "staff-black"
    past = config_resolve(**ALICE, revision=before)
    assert past.revision == before and past.values["db.password"] == "********"
    assert past.provenance["theme"].layer == "group:staff" and past.provenance["theme"].version == 1


def test_revision__membership_left_later__the_past_still_has_the_group(registry, make_user):
    from django.contrib.auth.models import User

    alice = User.objects.get(username="alice")
    in_staff = registry_revision()
    alice.groups.add(Group.objects.get(name="ops"))
    in_both = registry_revision()
    alice.groups.remove(Group.objects.get(name="staff"))
    only_ops = registry_revision()
    alice.groups.clear()
    assert [_at(r)["theme"] for r in (in_staff, in_both, only_ops, registry_revision())] == [
        "staff-blue",
        "ops-red",  # ops has the higher priority
        "ops-red",
        "grey",
    ]
    Group.objects.get(name="staff").user_set.add(alice)  # from the group's side
    assert _at(registry_revision())["theme"] == "staff-blue" and _at(only_ops)["theme"] == "ops-red"


def test_revision__priorities_swapped_later__the_past_keeps_its_winner(registry, actor):
    from django.contrib.auth.models import User

    from config_registry.selectors import layer_get

    User.objects.get(username="alice").groups.add(Group.objects.get(name="ops"))
    ops_wins = registry_revision()
    layer_update(layer=layer_get("group:staff"), description="", priority=5, actor=actor)
    assert _at(registry_revision())["theme"] == "staff-blue"
    assert _at(ops_wins)["theme"] == "ops-red"


def test_revision__default_changed_then_removed__the_past_keeps_each_default(registry, actor):
    key_definition_save(key="chat.limit", default=5, actor=actor)
    five = registry_revision()
    key_definition_save(key="chat.limit", default=7, actor=actor)
    seven = registry_revision()
    key_definition_save(key="chat.limit", actor=actor)  # no default any more
    assert _at(five)["chat.limit"] == 5 and _at(seven)["chat.limit"] == 7
    assert "chat.limit" not in _at(registry_revision())
    assert config_resolve(**ALICE, revision=five).provenance["chat.limit"].layer == "default"


def _get(api, token, **params):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api.get(API, {**ALICE, **params})


def test_api__past_revision__same_answer_and_etag_for_good_and_immutable(registry, actor, make_token, api):
    token = make_token("config:read")
    past = registry_revision()
    first = _get(api, token, revision=past, explain="true")
    assert first.status_code == 200 and first.json()["revision"] == past
    assert first["Cache-Control"] == "private, max-age=31536000, immutable"
    _publish("group:staff", {"theme": "staff-black"}, actor)
    again = _get(api, token, revision=past, explain="true")
    assert (again.content, again["ETag"]) == (first.content, first["ETag"])
    assert json.loads(again.content)["values"]["theme"] == "staff-blue"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    cached = api.get(API, {**ALICE, "revision": past, "explain": "true"}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert cached.status_code == 304 and cached["ETag"] == first["ETag"]
    now = _get(api, token)
    assert now.json()["values"]["theme"] == "staff-black" and "immutable" not in now.get("Cache-Control", "")


def test_api__at_a_time__the_last_revision_made_by_then(registry, actor, make_token, api):
    token = make_token("config:read")
    between = timezone.now()
    past = registry_revision()
    _publish("group:staff", {"theme": "staff-black"}, actor)
    answer = _get(api, token, at=between.isoformat())
    assert answer.status_code == 200, answer.content
    assert answer.json()["revision"] == past and answer.json()["values"]["theme"] == "staff-blue"


@pytest.mark.parametrize(
    "params, field, words",
    [
        ({"revision": "99999"}, "revision", "in the future"),
        ({"revision": "0"}, "revision", "greater than or equal to 1"),
        ({"revision": "soon"}, "revision", "valid integer"),
        ({"at": "2001-01-01T00:00:00Z"}, "at", "before the registry's first revision"),
        ({"at": "2999-01-01T00:00:00Z"}, "at", "in the future"),
        ({"at": "yesterday"}, "at", "format"),
        ({"revision": "1", "at": "2026-01-01T00:00:00Z"}, "at", "not both"),
    ],
)
def test_api__revision_or_time_never_reached__400_naming_it(registry, make_token, api, params, field, words):
    answer = _get(api, make_token("config:read"), **params)
    assert answer.status_code == 400, answer.content
    assert words in json.dumps(answer.json()), answer.json()
    assert field in json.dumps(answer.json())


def test_api__past_revision_with_secrets_read__revealed_as_they_were_and_audited(registry, actor, make_token, api):
    from config_registry.models import AuditEvent

    past = registry_revision()
    _publish("global", {"db.password": "two"}, actor)
    answer = _get(api, make_token("config:read", "secrets:read"), revision=past)
    assert answer.json()["values"]["db.password"] == "one"
    assert AuditEvent.objects.filter(action="secret.reveal").first().changes["revision"] == past


def test_resolve_config__revision_and_at__as_then(registry, actor):
    past, moment = registry_revision(), timezone.now()
    _publish("group:staff", {"theme": "staff-black"}, actor)
    for option in (["--revision", str(past)], ["--at", moment.isoformat()]):
        out = StringIO()
        call_command(
            "resolve_config", "--environment", "prod", "--service", "chat", "--user", "alice", *option, stdout=out
        )
        answer = json.loads(out.getvalue())
        assert answer["revision"] == past and answer["values"]["theme"] == "staff-blue"
    with pytest.raises(CommandError, match="in the future"):
        call_command("resolve_config", "--environment", "prod", "--service", "chat", "--revision", "99999")
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("resolve_config", "--environment", "prod", "--service", "chat", "--at", "later")
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()
    with pytest.raises(CommandError, match="in the future"):
        call_command("resolve_config", "--environment", "prod", "--service", "chat", "--at", tomorrow)


def test_admin_preview__a_past_revision__shows_what_it_was(registry, actor, admin_client):
    past = registry_revision()
    _publish("group:staff", {"theme": "staff-black"}, actor)
    page = admin_client.get("/admin/config_registry/layer/preview/", {**ALICE, "revision": past}).content.decode()
    assert f"At revision {past}" in page and "staff-blue" in page and "staff-black" not in page
    page = admin_client.get("/admin/config_registry/layer/preview/", {**ALICE, "revision": 99999}).content.decode()
    assert "in the future" in page
