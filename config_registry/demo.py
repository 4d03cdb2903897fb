"""The demo data set of `make run`: layers at every level, secrets, chat users, a service token."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from .audit import Actor, audit_record
from .models import AuditEvent, Scope
from .services import key_definition_save, layer_create, token_create, version_publish

ACTOR = Actor("cli:seed_demo", "manage.py", may_write_security=True)

KEY_DEFINITIONS = [
    ("chat.enabled", "Whether the user may chat.", {"type": "boolean"}, False, True),
    (
        "chat.max_message_length",
        "Longest chat message, in characters.",
        {"type": "integer", "minimum": 1, "maximum": 65536},
        False,
        2000,
    ),
    (
        "chat.rate_limit_per_minute",
        "Messages a user may send per minute.",
        {"type": "integer", "minimum": 1},
        False,
        30,
    ),
    (
        "chat.signing_keys",
        "Keys that sign chat tickets; the first signs, all verify.",
        {"type": "array", "items": {"type": "string", "minLength": 32}, "minItems": 1},
        True,
        None,
    ),
    ("chat.welcome_message", "Shown to a user when they join a room.", {"type": "string"}, False, None),
    (
        "chat.allowed_rooms",
        "Rooms the user may join; absent or null: every room.",
        {"type": ["array", "null"], "items": {"type": "string", "minLength": 1, "maxLength": 100}},
        False,
        None,
    ),
    ("feature.dark_mode", "Dark theme in the chat page.", {"type": "boolean"}, False, False),
]


@dataclass(frozen=True)
class DemoCredentials:
    admin_password: str
    user_passwords: dict[str, str]
    token: str


def demo_seeded() -> bool:
    return AuditEvent.objects.filter(action="demo.seed").exists()


def _publish(
    ref: str, values: dict, secret_keys: tuple[str, ...] = (), description: str = "", priority: int = 0
) -> None:
    layer = layer_create(ref=ref, description=description, priority=priority, actor=ACTOR)
    version_publish(layer=layer, base_version=0, set_=values, secrets=secret_keys, actor=ACTOR, comment="Demo data")


@transaction.atomic
def demo_seed() -> DemoCredentials:
    """Create the demo data set; call once (demo_seeded() tells)."""
    users = get_user_model().objects
    admin_password = secrets.token_urlsafe(12)
    users.create_superuser("admin", "admin@example.com", admin_password)
    passwords = {name: secrets.token_urlsafe(9) for name in ("alice", "bob")}
    staff, beta = Group.objects.create(name="staff"), Group.objects.create(name="beta")
    alice = users.create_user("alice", "alice@example.com", passwords["alice"])
    bob = users.create_user("bob", "bob@example.com", passwords["bob"])
    alice.groups.add(staff, beta)
    bob.groups.add(beta)

    for key, description, schema, secret, default in KEY_DEFINITIONS:
        extra = {} if default is None else {"default": default}
        key_definition_save(key=key, description=description, schema=schema, secret=secret, actor=ACTOR, **extra)

    _publish(
        "global",
        {
            "chat.signing_keys": [secrets.token_urlsafe(32)],
            "chat.welcome_message": "Welcome to the chat!",
            "log.level": "info",
        },
        ("chat.signing_keys",),
        "Defaults for every environment and service",
    )
    _publish(
        "environment:development",
        {"chat.rate_limit_per_minute": 120, "log.level": "debug"},
        description="Developers' machines",
    )
    _publish(
        "environment:production",
        {"chat.rate_limit_per_minute": 30, "database.password": secrets.token_urlsafe(16)},
        ("database.password",),
        "Production",
    )
    _publish("service:chat", {"chat.max_message_length": 1000}, description="The chat service")
    _publish(
        "service:billing",
        {"billing.currency": "EUR", "billing.api_key": secrets.token_urlsafe(16)},
        ("billing.api_key",),
        "The billing service",
    )
    _publish("group:beta", {"feature.dark_mode": True}, description="Beta testers", priority=5)
    _publish(
        "group:staff",
        {"chat.max_message_length": 4000, "chat.rate_limit_per_minute": 600},
        description="Staff",
        priority=10,
    )
    _publish("user:alice", {"chat.welcome_message": "Welcome back, Alice!"}, description="Alice")
    _publish("user:bob", {"chat.max_message_length": 280}, description="Bob")

    _, token = token_create(
        name="demo", actor=ACTOR, scopes=[Scope.CONFIG_READ, Scope.CONFIG_WRITE, Scope.AUDIT_READ, Scope.CHAT_TICKET]
    )
    audit_record(actor=ACTOR, action="demo.seed", target="registry")
    return DemoCredentials(admin_password, passwords, token)
