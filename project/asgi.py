"""ASGI entry point: HTTP → Django; WebSocket → origin check (ALLOWED_HOSTS) → URL routing."""

import argparse

import django
from django.core.management.base import handle_default_options

# Django's own way to name the settings module (as `--settings` does); the environment is
# read by project/settings.py alone.
handle_default_options(argparse.Namespace(settings="project.settings", pythonpath=None))
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from chat.routing import websocket_urlpatterns as chat_routes  # noqa: E402
from config_registry.routing import no_route  # noqa: E402
from config_registry.routing import websocket_urlpatterns as registry_routes  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """Browsers always send Origin on a WebSocket handshake, so a foreign Origin is refused (403).
    Clients that send none are services, not pages: they authenticate with a token header,
    which no cross-site page can set."""

    def valid_origin(self, parsed_origin):
        return parsed_origin is None or self.validate_origin(parsed_origin)


application = ProtocolTypeRouter({
    "http": get_asgi_application(),
    "websocket": BrowserOriginValidator(URLRouter([*registry_routes, *chat_routes, *no_route]), settings.ALLOWED_HOSTS),
})
