"""channels' consumer without its thread hop per message: the one private behaviour we change there.

AsyncConsumer.dispatch() and AsyncWebsocketConsumer.websocket_disconnect() of channels 4 call
channels.db.aclose_old_connections() — a hop to a database thread — around every message, so that
stale connections of the consumer's own database calls are closed. Consumers that make every
database call through config_registry.asyncdb.db_call (which closes its own connections) need no
such hop; this mixin routes messages exactly as channels does, without it.

tests/test_infra_adapters.py holds the source of both methods as channels 4.3 has them: an upgrade
that changes them fails there, so that someone reads what changed before this mixin is trusted again.
"""

import logging

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer

logger = logging.getLogger(__name__)


class WithoutThreadHop:
    """Mix in before channels' AsyncWebsocketConsumer (or a subclass) whose consumer has no groups
    (`channel_layer_alias = None`) and reaches its database through db_call only."""

    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message):
        await self.disconnect(message["code"])
        raise StopConsumer()
