"""Writes of the chat."""

from .models import Message
from .selectors import message_as_dict


def message_post(*, room: str, user, text: str) -> dict:
    """Store a message; returns it as the room will receive it."""
    return message_as_dict(Message.objects.create(room=room, user=user, text=text))
