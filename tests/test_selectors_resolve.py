"""Resolution through the database: precedence, groups by priority, revisions, snapshots."""

import pytest
from django.contrib.auth.models import Group

from config_registry.exceptions import InvalidInput, NotFound
from config_registry.selectors import config_resolve, registry_revision
from config_registry.selectors.snapshots import snapshots_at
from config_registry.services import config_reveal, key_definition_save, layer_update, version_publish


@pytest.fixture
def stack(make_layer, make_user):
    make_user("alice", "staff", "beta")
    make_user("bob", "beta")
    return {
        "global": make_layer(
            "global", {"level": "global", "color": "grey", "db.password": "g"}, secrets=["db.password"]
        ),
        "env": make_layer("environment:prod", {"level": "environment", "db.password": "p"}, secrets=["db.password"]),
        "service": make_layer("service:chat", {"level": "service"}),
        "staff": make_layer("group:staff", {"level": "group:staff", "color": "red"}, priority=10),
        "beta": make_layer("group:beta", {"level": "group:beta", "color": "blue", "beta": True}, priority=5),
        "alice": make_layer("user:alice", {"level": "user"}),
    }


def test_config_resolve__full_stack__user_over_groups_over_service_over_environment_over_global(stack):
    resolved = config_resolve(environment="prod", service="chat", user="alice")
    assert resolved.values == {"level": "user", "color": "red", "beta": True, "db.password": "********"}
    assert resolved.secrets == {"db.password"}
    assert resolved.context == {"environment": "prod", "service": "chat", "user": "alice"}
    color = resolved.as_dict(explain=True)["provenance"]["color"]
    assert color == {
        "layer": "group:staff",
        "version": 1,
        "overrides": [{"layer": "group:beta", "version": 1}, {"layer": "global", "version": 1}],
    }


def test_config_resolve__other_user__gets_only_their_own_layers(stack):
    resolved = config_resolve(environment="prod", service="chat", user="bob")
    assert resolved.values["level"] == "group:beta" and resolved.values["color"] == "blue"


def test_config_resolve__group_priority_changed__order_and_revision_change(stack, actor):
    before = registry_revision()
    layer_update(layer=stack["beta"], description="", priority=50, actor=actor)
    assert registry_revision() == before + 1
    assert config_resolve(environment="prod", service="chat", user="alice").values["color"] == "blue"


def test_config_resolve__user_joins_group__revision_moves_and_values_follow(stack):
    before = registry_revision()
    from django.contrib.auth.models import User

    User.objects.get(username="bob").groups.add(Group.objects.get(name="staff"))
    assert registry_revision() > before
    assert config_resolve(environment="prod", service="chat", user="bob").values["color"] == "red"


def test_config_reveal__decrypts_only_the_winner(stack, actor):
    resolved = config_reveal(environment="prod", service="chat", user="alice", actor=actor)
    assert resolved.values["db.password"] == "p"
    assert config_reveal(environment="dev", service="chat", user=None, actor=actor).values["db.password"] == "g"


def test_config_resolve__never_reveals__secrets_masked(stack):
    assert config_resolve(environment="prod", service="chat", user="alice").values["db.password"] == "********"


def test_config_resolve__key_definition_default__lowest_layer(stack, actor):
    key_definition_save(key="chat.enabled", schema={"type": "boolean"}, default=True, actor=actor)
    key_definition_save(key="color", default="black", actor=actor)
    resolved = config_resolve(environment="prod", service="chat", user="bob")
    assert resolved.values["chat.enabled"] is True and resolved.values["color"] == "blue"
    assert resolved.provenance["chat.enabled"].layer == "default"


def test_config_resolve__unknown_user__not_found(stack):
    with pytest.raises(NotFound, match="user 'carol' does not exist"):
        config_resolve(environment="prod", service="chat", user="carol")


@pytest.mark.parametrize("environment, service", [("Prod", "chat"), ("prod", ""), ("prod", "a b"), (None, "chat")])
def test_config_resolve__bad_names__invalid_input(stack, environment, service):
    with pytest.raises(InvalidInput, match="invalid context"):
        config_resolve(environment=environment, service=service, user="alice")


def test_config_resolve__no_layers_for_context__empty_but_valid(db):
    resolved = config_resolve(environment="staging", service="unknown", user=None)
    assert (resolved.values, resolved.provenance) == ({}, {})


def test_snapshot__at_an_earlier_revision__excludes_later_versions(stack, actor):
    revision = registry_revision()
    version_publish(layer=stack["global"], base_version=1, set_={"color": "green"}, actor=actor)
    old = {s.ref: s for s in snapshots_at([stack["global"]], revision)}
    new = {s.ref: s for s in snapshots_at([stack["global"]], registry_revision())}
    assert (old["global"].version, old["global"].entries["color"]) == (1, "grey")
    assert (new["global"].version, new["global"].entries["color"]) == (2, "green")


def test_config_resolve__carries_the_revision_it_read(stack, actor):
    first = config_resolve(environment="prod", service="chat", user="alice")
    version_publish(layer=stack["alice"], base_version=1, set_={"level": "me"}, actor=actor)
    second = config_resolve(environment="prod", service="chat", user="alice")
    assert second.revision == first.revision + 1 == registry_revision()
    assert second.values["level"] == "me"
