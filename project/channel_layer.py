"""channels_redis's layer, made to wait out a Redis outage instead of crashing every consumer.

A consumer's receive loop runs for its whole connection; when Redis is unreachable,
channels_redis raises from it and the ASGI server closes the socket with 1011 — the predecessor's
failure. Here the receive backs off and tries again until Redis is back.
"""

import asyncio
import logging
import time

from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
_last_warning = 0.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    async def receive(self, channel):
        global _last_warning
        delay = 0.25
        while True:
            try:
                return await super().receive(channel)
            except (RedisError, OSError) as error:
                if time.monotonic() - _last_warning > 10:
                    _last_warning = time.monotonic()
                    logger.warning("channel layer unavailable (%s); consumers wait for Redis", error)
                await asyncio.sleep(delay)  # back off while Redis is away
                delay = min(delay * 2, 5.0)
