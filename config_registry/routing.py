"""WebSocket routes of the registry."""

from django.urls import path, re_path

from .consumers import ConfigWatchConsumer, NoRouteConsumer

websocket_urlpatterns = [path("ws/config/", ConfigWatchConsumer.as_asgi())]
# Last of all routes (project/asgi.py): every other path is refused with 4404, not a router error.
no_route = [re_path(r"^", NoRouteConsumer.as_asgi())]
