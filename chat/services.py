"""Writes of the chat, and opening a chat session (which consumes its ticket)."""

from dataclasses import dataclass

from config_registry.selectors import Position, registry_position, registry_position_known

from .models import Message
from .selectors import CONFIG_MAX_AGE_SECONDS, chat_config, chat_config_known, room_history
from .tickets import (
    KEYS_MAX_AGE_SECONDS,
    ChatUser,
    UnknownKey,
    active_user_known,
    signing_keys_known,
    ticket_claims,
    ticket_verify,
)


@dataclass(frozen=True)
class ChatSession:
    user: ChatUser
    config: dict
    history: list[dict] | None  # None: not read (session_known)
    refusal: str | None  # why this user may not chat in this room, if they may not
    position: Position  # the registry position it was made at (at most this old)


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
    position = registry_position(CONFIG_MAX_AGE_SECONDS)
    user = ticket_verify(ticket)
    config = chat_config(user.username, max_age=CONFIG_MAX_AGE_SECONDS)
    refusal = may_chat(config, room)
    return ChatSession(user, config, [] if refusal else room_history(room), refusal, position)


def session_known(*, ticket: str, room: str) -> tuple[ChatSession, dict] | None:
    """session_open() without any I/O, when this process has the signing keys, the user (active)
    and their configuration in memory for the position it knows: (session without history, the
    ticket's claims, not yet consumed: the caller consumes them first). None when something is not
    in memory: then session_open() decides. Raises TicketInvalid for a ticket that is bad anyway."""
    position = registry_position_known(KEYS_MAX_AGE_SECONDS)
    keys = signing_keys_known(KEYS_MAX_AGE_SECONDS) if position is not None else None
    if keys is None:
        return None
    try:
        claims = ticket_claims(ticket, keys)
    except UnknownKey:  # perhaps a key published a moment ago: session_open looks again
        return None
    user = active_user_known(claims["sub"], position)
    config = chat_config_known(claims["sub"], position)
    if user is None or config is None:
        return None
    return ChatSession(user, config, None, may_chat(config, room), position), claims


def message_post(*, room: str, user: ChatUser, text: str) -> dict:
    """Store a message; returns it as the room will receive it."""
    message = Message.objects.create(room=room, user_id=user.pk, text=text)
    return {"id": message.pk, "user": user.username, "text": text, "at": message.created_at.isoformat()}
