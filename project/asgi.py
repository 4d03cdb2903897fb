"""ASGI entry point: HTTP → Django; WebSocket → origin check (ALLOWED_HOSTS) → URL routing."""

import argparse

import django
from django.core.management.base import handle_default_options

# Django's own way to name the settings module (as `--settings` does); the environment is
# read by project/settings.py alone.
handle_default_options(argparse.Namespace(settings="project.settings", pythonpath=None))
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": get_asgi_application(),
    "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
})
