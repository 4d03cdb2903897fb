"""Chat messages, stored per room."""

from django.conf import settings
from django.db import models


class Message(models.Model):
    room = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_messages")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["room", "-created_at"], name="chat_room_recent")]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.room}: {self.user} {self.created_at:%Y-%m-%d %H:%M}"
