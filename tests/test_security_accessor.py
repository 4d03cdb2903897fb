"""The security-config accessor reads secrets through the registry, and from nowhere else."""

import pytest
from django.db import DatabaseError

from config_registry import security
from config_registry.exceptions import RegistryUnavailable, SecurityConfigMissing
from config_registry.services import version_publish

KEY = "chat.signing_keys"


def test_security_secret__published_in_global__returned_in_plaintext(make_layer):
    make_layer("global", {KEY: ["key-one"]}, secrets=[KEY])
    assert security.security_secret(KEY) == ["key-one"]


def test_security_secret__deployment_environment_and_service_layers__apply(make_layer, settings):
    settings.REGISTRY_ENVIRONMENT = "production"
    make_layer("global", {KEY: ["global"]}, secrets=[KEY])
    make_layer("environment:production", {KEY: ["production"]}, secrets=[KEY])
    make_layer("environment:development", {KEY: ["development"]}, secrets=[KEY])
    assert security.security_secret(KEY) == ["production"]
    make_layer("service:chat", {KEY: ["chat-service"]}, secrets=[KEY])
    assert security.security_secret(KEY) == ["chat-service"]


def test_security_secret__group_and_user_layers__can_never_change_it(make_layer, make_user):
    make_user("mallory", "staff")
    make_layer("global", {KEY: ["real"]}, secrets=[KEY])
    make_layer("group:staff", {KEY: ["from-group"]}, secrets=[KEY])
    make_layer("user:mallory", {KEY: ["from-user"]}, secrets=[KEY])
    assert security.security_secret(KEY) == ["real"]


def test_security_secret__absent__missing_error_says_what_to_publish(db, settings, monkeypatch):
    monkeypatch.setenv("CHAT_SIGNING_KEYS", "from-the-environment")
    monkeypatch.setenv("SERVICE_SECRET", "from-the-environment")
    settings.CHAT_SIGNING_KEYS = ["from-settings"]
    with pytest.raises(SecurityConfigMissing) as raised:
        security.security_secret(KEY)
    assert str(raised.value) == (
        "chat.signing_keys is not published for environment 'development', service 'chat': publish it "
        "as a secret in the global, environment:development or service:chat layer"
    )


def test_security_secret__published_in_plain_text__refused(make_layer):
    make_layer("global", {KEY: ["oops"]})
    with pytest.raises(SecurityConfigMissing, match="published in plain text, not as a secret"):
        security.security_secret(KEY)


def test_security_secret__new_publish__seen_at_the_next_call(make_layer, actor):
    layer = make_layer("global", {KEY: ["old"]}, secrets=[KEY])
    assert security.security_secret(KEY) == ["old"]
    version_publish(layer=layer, base_version=1, set_={KEY: ["new", "old"]}, actor=actor)
    assert security.security_secret(KEY) == ["new", "old"]


def test_security_secret__database_down__registry_unavailable(db, monkeypatch):
    def unavailable(*args):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(security, "registry_position", unavailable)
    with pytest.raises(RegistryUnavailable, match="registry database is unavailable"):
        security.security_secret(KEY)
