"""The product's ASGI application under the benchmark settings, plus a bare WebSocket consumer."""

import argparse

import django
from django.core.management.base import handle_default_options

handle_default_options(argparse.Namespace(settings="bench.settings", pythonpath=None))
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from project.asgi import application as product  # noqa: E402


class BareConsumer(AsyncWebsocketConsumer):
    """The least a Channels consumer can do: accept and say one thing."""

    async def connect(self):
        await self.accept()
        await self.send("{}")


application = ProtocolTypeRouter({
    "http": product.application_mapping["http"],
    "websocket": URLRouter([path("ws/bare/", BareConsumer.as_asgi()),
                            re_path(r"", product.application_mapping["websocket"])]),
})
