"""WebSocket routes of the registry."""

from django.urls import path

from .consumers import ConfigWatchConsumer

websocket_urlpatterns = [path("ws/config/", ConfigWatchConsumer.as_asgi())]
