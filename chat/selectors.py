"""Reads of the chat: a user's chat configuration (through the registry) and room history."""

from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from config_registry.diff import canonical_json
from config_registry.memory import PositionMemo
from config_registry.selectors import Position, config_resolve, contexts_resolve

from .models import Message

HISTORY_SIZE = 50
CHAT_SERVICE = "chat"
# What a chat connection is told: its chat.* limits and texts, and the page's theme.
CHAT_KEYS = ("chat.", "feature.dark_mode")


CONFIG_MAX_AGE_SECONDS = 1.0  # see chat.tickets.KEYS_MAX_AGE_SECONDS

# Users' chat configurations at one position; and one shared object per distinct configuration.
CHAT_CONFIGS: PositionMemo[str, "ChatConfig"] = PositionMemo("chat configurations", 10_000)
EQUAL_CONFIGS: PositionMemo[str, "ChatConfig"] = PositionMemo("equal chat configurations", 10_000, lambda position: ())


def chat_config(username: str, position: Position) -> "ChatConfig":
    """The user's non-secret `chat.*` values, resolved for this deployment's environment at
    `position` (or later). Equal configurations are one shared object (read-only): thousands of
    connections hold one each."""
    resolved = config_resolve(
        environment=settings.REGISTRY_ENVIRONMENT, service=CHAT_SERVICE, user=username, position=position
    )
    return _remembered(position, username, _chat_values(resolved.values, resolved.secrets))


def chat_configs(usernames: set[str]) -> dict[str, "ChatConfig | None"]:
    """chat_config() of each user, now: one read of the shared part and one batched read of their
    overlays for all of them (a publish's fan-out); None for a user who is no longer active (or no
    longer exists)."""
    position, people = contexts_resolve(settings.REGISTRY_ENVIRONMENT, CHAT_SERVICE, usernames, prefix=CHAT_KEYS)
    configs: dict[str, ChatConfig | None] = dict.fromkeys(usernames)
    for username, (active, resolution) in people.items():
        if active:
            config = {key: value for key, value in resolution.values.items() if key not in resolution.secrets}
            configs[username] = _remembered(position, username, config)  # (only chat.* keys were resolved)
    return configs


def _chat_values(values: dict, secrets: frozenset[str]) -> dict:
    return {key: value for key, value in values.items() if key.startswith(CHAT_KEYS) and key not in secrets}


class ChatConfig(dict):
    """A user's chat configuration (read-only: one object for every connection with equal values)
    with its `config` frame, encoded once for all of them."""

    __slots__ = ("frame",)

    def __init__(self, values: dict, fingerprint: str):
        super().__init__(values)
        self.frame = f'{{"type":"config","values":{fingerprint}}}'


def _remembered(position: Position, username: str, config: dict) -> ChatConfig:
    fingerprint = canonical_json(config)
    shared = EQUAL_CONFIGS.get((), fingerprint)
    if shared is None:
        shared = ChatConfig(config, fingerprint)
        EQUAL_CONFIGS.put((), fingerprint, shared)
    CHAT_CONFIGS.put(position, username, shared)
    return shared


def chat_config_known(username: str, position: Position) -> "ChatConfig | None":
    """chat_config() of `username` at `position` if this process has it in memory (no I/O)."""
    return CHAT_CONFIGS.get(position, username)


def _history_sql() -> str:
    quote = connection.ops.quote_name
    messages, users = quote(Message._meta.db_table), quote(get_user_model()._meta.db_table)
    return (
        f"SELECT m.id, u.username, m.text, m.created_at FROM {messages} m "
        f"JOIN {users} u ON u.id = m.user_id WHERE m.room = %s "
        f"ORDER BY m.created_at DESC, m.id DESC LIMIT {HISTORY_SIZE}"
    )


def _aware(value) -> datetime:
    # SQLite hands back text, PostgreSQL a datetime; both are UTC.
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def room_history(room: str) -> list[dict]:
    """The room's last messages, oldest first."""
    # Plain SQL: this runs on every chat handshake, where compiling an ORM query would cost more
    # than running it.
    with connection.cursor() as cursor:
        cursor.execute(_history_sql(), [room])
        rows = cursor.fetchall()
    return [
        {"id": pk, "user": username, "text": text, "at": _aware(at).isoformat()}
        for pk, username, text, at in reversed(rows)
    ]
