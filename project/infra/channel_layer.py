"""channels_redis's layer, made to wait out a Redis outage instead of crashing every consumer,
and to join a group in one round trip that says whether the channel was missing from it.

group_add() uses channels_redis's own key layout through its non-public helpers (_group_key,
connection, consistent_hash, group_expiry): tests/test_infra_adapters.py checks that it leaves
exactly what channels_redis's group_add leaves, so an upgrade that changes the layout fails there.

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
    async def group_add(self, group, channel):
        # channels_redis awaits ZADD, then EXPIRE: two round trips on every chat join. One pipeline.
        assert self.require_valid_group_name(group), "Group name not valid"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        group_key = self._group_key(group)
        async with self.connection(self.consistent_hash(group)).pipeline(transaction=False) as pipeline:
            added, _ = (
                await pipeline.zadd(group_key, {channel: time.time()}).expire(group_key, self.group_expiry).execute()
            )
        return added  # 1 if the channel was not in the group (config_registry.live: a gap)

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
