"""WebSocket routes. The chat consumer (/ws/chat/<room>/) and the config watch (/ws/config/)
are added here by their issues; the ASGI router already checks origins in front of them."""

websocket_urlpatterns: list = []
