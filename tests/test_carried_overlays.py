"""Overlays carried from one revision to the next (SPEC §7: after a publish, one batched read of the
overlays that changed): whatever changed in between, a batch answers exactly what reading every
overlay afresh answers, and a publish to a shared layer re-reads no overlay at all."""

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config_registry.models import Entry
from config_registry.selectors import contexts_resolve, layer_get
from config_registry.selectors.people import CARRIED
from config_registry.selectors.resolution import _resolution
from config_registry.services import key_definition_save, layer_create, layer_update, revision_bump, version_publish

NAMES = [f"u{i}" for i in range(8)]


def _publish(ref: str, values: dict, actor, secrets=()) -> None:
    layer = layer_get(ref)
    version_publish(layer=layer, base_version=layer.current_version, set_=values, secrets=secrets, actor=actor)


def _batch(names) -> dict:
    position, resolved = contexts_resolve("production", "chat", names)
    return {name: (active, r.values, r.secrets, r.provenance) for name, (active, r) in resolved.items()}


def _afresh(names) -> dict:
    """Every user's resolution read on its own, every overlay from the database."""
    answers = {}
    for name in names:
        user = User.objects.filter(username=name).first()
        if user is None:
            continue
        _, r = _resolution("production", "chat", name)
        answers[name] = (user.is_active, r.values, r.secrets, r.provenance)
    return answers


@pytest.fixture
def people(make_layer):
    make_layer("global", {"a": 0, "limit": 10, "token": "s0"}, secrets=["token"])
    make_layer("service:chat", {"b": 1})
    crew, band, _ = (Group.objects.create(name=name) for name in ("crew", "band", "quiet"))
    make_layer("group:crew", {"limit": 20, "team": "crew"}, priority=1)
    make_layer("group:band", {"limit": 30, "team": "band"}, priority=2)
    for i, name in enumerate(NAMES):
        user = User.objects.create(username=name)
        user.groups.add(crew if i % 2 else band)
        if i % 3 == 0:
            user.groups.add(crew, band)
        if i % 4 == 0:
            make_layer(f"user:{name}", {"own": i})
    return NAMES


def _changes(actor):
    """Each change to what an overlay depends on, one at a time (name, function)."""

    def rename_user():
        user = User.objects.get(username="u4")  # has a layer of its own: user:u4 no longer applies
        user.username = "u4-renamed"
        user.save()

    def rename_group():
        Group.objects.filter(name="crew").update(name="crew2")  # no signal: seen at the next move
        _publish("service:chat", {"b": 2}, actor)

    return [
        ("a user's own layer published", lambda: _publish("user:u0", {"own": 100, "limit": 5}, actor)),
        ("a group's layer published", lambda: _publish("group:crew", {"limit": 21, "extra": True}, actor)),
        (
            "a group's priority changed",
            lambda: layer_update(layer=layer_get("group:crew"), description="", priority=9, actor=actor),
        ),
        ("a user joins a group", lambda: User.objects.get(username="u2").groups.add(Group.objects.get(name="crew"))),
        (
            "a user leaves a group",
            lambda: User.objects.get(username="u3").groups.remove(Group.objects.get(name="band")),
        ),
        ("a user's groups cleared", lambda: User.objects.get(username="u5").groups.clear()),
        ("a group's members cleared", lambda: Group.objects.get(name="band").user_set.clear()),
        ("a user's layer created and published", lambda: _user_layer("u1", actor)),
        ("a layer for a group that had none", lambda: _group_layer("quiet", ["u6", "u7"], actor)),
        ("a user deactivated", lambda: User.objects.filter(username="u6").update(is_active=False) or _bump()),
        ("a user renamed", rename_user),
        ("a user deleted", lambda: User.objects.get(username="u7").delete()),
        ("a group renamed", rename_group),
        ("a default changed", lambda: key_definition_save(key="limit", default=1, actor=actor)),
        ("a shared layer published", lambda: _publish("global", {"token": "s1"}, actor, secrets=["token"])),
    ]


def _bump():
    revision_bump()


def _user_layer(name: str, actor) -> None:
    layer = layer_create(ref=f"user:{name}", actor=actor)
    version_publish(layer=layer, base_version=0, set_={"own": "new", "limit": 7}, actor=actor)


def _group_layer(group: str, members: list[str], actor) -> None:
    Group.objects.get(name=group).user_set.add(*User.objects.filter(username__in=members))
    layer = layer_create(ref=f"group:{group}", priority=5, actor=actor)
    version_publish(layer=layer, base_version=0, set_={"limit": 50, "team": group}, actor=actor)


@pytest.mark.django_db
def test_carried__after_each_kind_of_change__the_same_as_reading_every_overlay_afresh(people, actor):
    asked = [*people, "u4-renamed"]
    assert _batch(asked) == _afresh(asked)
    for name, change in _changes(actor):
        change()
        assert _batch(asked) == _afresh(asked), name
    assert len(CARRIED) > 0  # the batches were carried, not read afresh


@pytest.mark.django_db
def test_carried__one_batch_asks_for_fewer_users__the_others_are_still_carried(people, actor):
    _batch(people)
    _publish("user:u0", {"own": 7}, actor)
    assert _batch(people[:2]) == _afresh(people[:2])
    _publish("group:band", {"limit": 33}, actor)  # u0's carried overlay (at the earlier revision) moves too
    assert _batch(people) == _afresh(people)


@pytest.mark.django_db
def test_carried__publish_to_a_shared_layer__reads_no_overlay(people, actor):
    _batch(people)
    _publish("service:chat", {"b": 3}, actor)
    entries = Entry._meta.db_table
    with CaptureQueriesContext(connection) as captured:
        resolved = _batch(people)
    entry_reads = [query for query in captured.captured_queries if entries in query["sql"]]
    assert len(entry_reads) == 1  # the shared part's; no user's or group's entries
    assert all(values["b"] == 3 for _, values, _, _ in resolved.values())
    assert resolved == _afresh(people)


@pytest.mark.django_db
def test_carried__past_the_bound__least_recently_asked_for_forgotten(people, actor, monkeypatch):
    monkeypatch.setattr(CARRIED, "max_people", 3)
    _batch(people[:3])
    _batch(people[3:5])
    assert len(CARRIED) == 3
    _publish("service:chat", {"b": 4}, actor)
    assert _batch(people) == _afresh(people)
