"""Writes of the chat."""

from .models import Message
from .tickets import ChatUser


def message_post(*, room: str, user: ChatUser, text: str) -> dict:
    """Store a message; returns it as the room will receive it."""
    message = Message.objects.create(room=room, user_id=user.pk, text=text)
    return {"id": message.pk, "user": user.username, "text": text, "at": message.created_at.isoformat()}
