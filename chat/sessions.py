"""Opening a chat session: the ticket's user, their chat configuration and (if they may chat in
the room) its history — from this process's memory when it has all of it, else from the database."""

from dataclasses import dataclass

from config_registry.asyncdb import db_call
from config_registry.state import Position, registry_position, registry_position_known

from .selectors import CONFIG_MAX_AGE_SECONDS, ChatConfig, chat_config, chat_config_known, room_history
from .tickets import (
    KEYS_MAX_AGE_SECONDS,
    ChatUser,
    UnknownKey,
    active_user_known,
    signing_keys_known,
    ticket_claims,
    ticket_consume_async,
    ticket_verify,
)


@dataclass(frozen=True)
class ChatSession:
    user: ChatUser
    config: ChatConfig
    history: list[dict] | None  # None: not read (opened from memory)
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


async def session_open(*, ticket: str, room: str) -> ChatSession:
    """Everything a connection needs, consuming its ticket: without any I/O but the ticket's
    single use when this process has it all in memory, else in one hop to a database thread.
    Raises TicketInvalid, and RegistryUnavailable / SecurityConfigMissing / DatabaseError."""
    known = _session_known(ticket=ticket, room=room)
    if known is None:
        return await db_call(session_read)(ticket=ticket, room=room)
    session, claims = known
    await ticket_consume_async(claims)
    return session


def session_read(*, ticket: str, room: str) -> ChatSession:
    """session_open() from the database (in a database thread)."""
    position = registry_position(CONFIG_MAX_AGE_SECONDS)
    user = ticket_verify(ticket, position)
    config = chat_config(user.username, position)
    refusal = may_chat(config, room)
    return ChatSession(user, config, [] if refusal else room_history(room), refusal, position)


def _session_known(*, ticket: str, room: str) -> tuple[ChatSession, dict] | None:
    """(session without history, the ticket's claims, not yet consumed) when the signing keys, the
    user (active) and their configuration are in memory for the position this process knows; None
    when something is not. Raises TicketInvalid for a ticket that is bad anyway."""
    position = registry_position_known(KEYS_MAX_AGE_SECONDS)
    keys = signing_keys_known(KEYS_MAX_AGE_SECONDS) if position is not None else None
    if keys is None:
        return None
    try:
        claims = ticket_claims(ticket, keys)
    except UnknownKey:  # perhaps a key published a moment ago: session_read looks again
        return None
    user = active_user_known(claims["sub"], position)
    config = chat_config_known(claims["sub"], position)
    if user is None or config is None:
        return None
    return ChatSession(user, config, None, may_chat(config, room), position), claims
