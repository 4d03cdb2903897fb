"""Writes of the chat, and opening a chat session (which consumes its ticket)."""

from dataclasses import dataclass

from .models import Message
from .selectors import CONFIG_MAX_AGE_SECONDS, chat_config, room_history
from .tickets import ChatUser, ticket_verify


@dataclass(frozen=True)
class ChatSession:
    user: ChatUser
    config: dict
    history: list[dict]
    refusal: str | None  # why this user may not chat in this room, if they may not


def may_chat(config: dict, room: str) -> str | None:
    """Why this configuration does not let its user chat in `room`, or None."""
    if config.get("chat.enabled", True) is not True:
        return "chat is disabled for this user (chat.enabled)"
    allowed = config.get("chat.allowed_rooms")
    if isinstance(allowed, list) and room not in allowed:
        return f"room {room!r} is not among this user's chat.allowed_rooms"
    return None


def session_open(*, ticket: str, room: str) -> ChatSession:
    """Everything a connection needs, in one call (one hop to a database thread): the ticket's
    user, their chat configuration, and the room's history if they may chat there.
    Raises TicketInvalid, and RegistryUnavailable / SecurityConfigMissing / DatabaseError."""
    user = ticket_verify(ticket)
    config = chat_config(user.username, max_age=CONFIG_MAX_AGE_SECONDS)
    refusal = may_chat(config, room)
    return ChatSession(user, config, [] if refusal else room_history(room), refusal)


def message_post(*, room: str, user: ChatUser, text: str) -> dict:
    """Store a message; returns it as the room will receive it."""
    message = Message.objects.create(room=room, user_id=user.pk, text=text)
    return {"id": message.pk, "user": user.username, "text": text, "at": message.created_at.isoformat()}
