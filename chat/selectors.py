"""Reads of the chat: a user's chat configuration (through the registry) and room history."""

import json
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from config_registry.selectors import config_resolve

from .models import Message

HISTORY_SIZE = 50
CHAT_SERVICE = "chat"


CONFIG_MAX_AGE_SECONDS = 1.0  # see chat.tickets.KEYS_MAX_AGE_SECONDS


def chat_config(username: str, max_age: float = 0.0) -> dict:
    """The user's non-secret `chat.*` values, resolved for this deployment's environment. Equal
    configurations are one shared object (read-only): thousands of connections hold one each."""
    resolved = config_resolve(environment=settings.REGISTRY_ENVIRONMENT, service=CHAT_SERVICE, user=username,
                              max_age=max_age)
    config = {key: value for key, value in resolved.values.items()
              if key.startswith("chat.") and key not in resolved.secrets}
    fingerprint = json.dumps(config, sort_keys=True, default=str)
    if len(_configs) >= MAX_SHARED_CONFIGS:
        _configs.clear()
    return _configs.setdefault(fingerprint, config)


MAX_SHARED_CONFIGS = 10_000
_configs: dict[str, dict] = {}


def _history_sql() -> str:
    message, user = Message._meta, get_user_model()._meta
    return (f"SELECT m.id, u.username, m.text, m.created_at FROM {message.db_table} m "
            f"JOIN {user.db_table} u ON u.id = m.user_id WHERE m.room = %s "
            f"ORDER BY m.created_at DESC, m.id DESC LIMIT {HISTORY_SIZE}")


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
    return [{"id": pk, "user": username, "text": text, "at": _aware(at).isoformat()}
            for pk, username, text, at in reversed(rows)]
