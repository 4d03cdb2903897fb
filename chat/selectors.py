"""Reads of the chat: a user's chat configuration (through the registry) and room history."""

from django.conf import settings

from config_registry.selectors import config_resolve

from .models import Message

HISTORY_SIZE = 50
CHAT_SERVICE = "chat"


def chat_config(username: str) -> dict:
    """The user's non-secret `chat.*` values, resolved for this deployment's environment."""
    resolved = config_resolve(environment=settings.REGISTRY_ENVIRONMENT, service=CHAT_SERVICE, user=username)
    return {key: value for key, value in resolved.values.items()
            if key.startswith("chat.") and key not in resolved.secrets}


def message_as_dict(message: Message) -> dict:
    return {"id": message.pk, "user": message.user.username, "text": message.text,
            "at": message.created_at.isoformat()}


def room_history(room: str) -> list[dict]:
    """The room's last messages, oldest first."""
    recent = Message.objects.filter(room=room).select_related("user").order_by("-created_at", "-id")
    return [message_as_dict(message) for message in reversed(recent[:HISTORY_SIZE])]
