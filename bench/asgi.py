"""The product's ASGI application under the benchmark settings, plus a bare WebSocket consumer."""

import argparse

import django
import django.apps
from django.core.management.base import handle_default_options

if not django.apps.apps.ready:  # (bench.asgi_pubsub chose other settings first)
    handle_default_options(argparse.Namespace(settings="bench.settings", pythonpath=None))
    django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from project.asgi import application as product


class BareConsumer(AsyncWebsocketConsumer):
    """The least a Channels consumer can do: accept and say one thing."""

    async def connect(self):
        await self.accept()
        await self.send("{}")


class BareRoomConsumer(AsyncWebsocketConsumer):
    """A bare Channels room: join the room's group, relay what arrives to it."""

    async def connect(self):
        self.group = "bare." + self.scope["url_route"]["kwargs"]["room"]
        await self.accept()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send("{}")

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(self.group, {"type": "room.message", "text": text_data})

    async def room_message(self, event):
        await self.send(event["text"])


bare = URLRouter(
    [path("ws/bare/", BareConsumer.as_asgi()), path("ws/bare-room/<str:room>/", BareRoomConsumer.as_asgi())]
)
product_websocket = product.application_mapping["websocket"]


async def websocket(scope, receive, send):
    """Bare consumers under /ws/bare…; everything else reaches the product's own WebSocket stack as
    in production (not through another URLRouter, which would copy every connection's scope)."""
    app = bare if scope["path"].startswith("/ws/bare") else product_websocket
    return await app(scope, receive, send)


application = ProtocolTypeRouter({"http": product.application_mapping["http"], "websocket": websocket})
