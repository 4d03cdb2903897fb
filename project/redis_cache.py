"""Django's Redis cache backend, made for a cache that may be down, and cheaper per call.

- Redis down: reads are misses and writes are skipped (the registry then answers from its
  database); operations whose answer matters (add, counting) raise CacheUnavailable.
- Django builds a new redis.Redis for every cache operation; with redis-py 8 that costs more than
  the network round trip (each client builds its own table of response callbacks). The clients
  are thread-safe and share the pool, so one per pool is enough.
- Django keeps one cache object per thread and per asynchronous context, and channels runs every
  consumer in a context of its own: each WebSocket connection would get its own connection pool
  and Redis connection (measured: about 35 KB per idle chat connection). Cache objects with the
  same configuration share one client, pools and connections here.
"""

import asyncio
import logging
import threading
import time
import weakref
from functools import cached_property

from django.core.cache.backends import redis
from redis import Redis
from redis.asyncio import BlockingConnectionPool as AsyncBlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.backoff import NoBackoff
from redis.client import PubSub
from redis.exceptions import RedisError
from redis.retry import Retry

from config_registry.exceptions import CacheUnavailable

logger = logging.getLogger(__name__)
_last_warning = 0.0


def _warn(operation: str, error: Exception) -> None:
    global _last_warning
    if time.monotonic() - _last_warning > 10:  # once in a while, not once per request
        _last_warning = time.monotonic()
        logger.warning("Redis cache unavailable (%s: %s); reading through to the database", operation, error)


class ReusingRedisCacheClient(redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


_shared_clients: dict[tuple, ReusingRedisCacheClient] = {}
# Per event loop: each cache's redis.asyncio client, behind its batching of adds.
_shared_async_adds: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


class RedisCache(redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
        self._shared_key = (tuple(self._servers), repr(sorted(self._options.items())))

    @cached_property
    def _cache(self):
        with _shared_lock:
            client = _shared_clients.get(self._shared_key)
            if client is None:
                client = _shared_clients[self._shared_key] = self._class(self._servers, **self._options)
            return client

    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except RedisError as error:
            _warn("get", error)
            return default

    def set(self, key, value, timeout=redis.DEFAULT_TIMEOUT, version=None):
        try:
            super().set(key, value, timeout, version)
        except RedisError as error:
            _warn("set", error)

    def add(self, key, value, timeout=redis.DEFAULT_TIMEOUT, version=None):
        try:
            return super().add(key, value, timeout, version)
        except RedisError as error:
            raise CacheUnavailable(f"the shared cache is unavailable: {error}") from error

    def incr_with_expiry(self, key: str, timeout: int, amount: int = 1) -> int:
        """Count `amount` more for `key`, creating it to expire in `timeout` seconds: one round trip
        (Django's incr() asks whether the key exists first)."""
        key = self.make_and_validate_key(key)
        try:
            pipeline = self._cache.get_client(key, write=True).pipeline(transaction=False)
            pipeline.incr(key, amount)
            pipeline.expire(key, timeout, nx=True)
            return pipeline.execute()[0]
        except RedisError as error:
            raise CacheUnavailable(f"the shared cache is unavailable: {error}") from error

    async def add_async(self, key: str, value: int, timeout: int) -> bool:
        """add() on an event loop without a thread: redis.asyncio, one client per loop, the adds
        of the moment in one round trip. Raises CacheUnavailable like add(). (Django's aadd() runs
        add() in a thread.)"""
        key = self.make_and_validate_key(key)
        adds = _shared_async_adds.setdefault(asyncio.get_running_loop(), {})
        batch = adds.get(self._shared_key)
        if batch is None:
            # Sized and waiting like the sync pool (settings.CACHES); retries there are sync objects.
            pool = AsyncBlockingConnectionPool.from_url(
                self._servers[0],
                max_connections=self._options.get("max_connections", 100),
                timeout=self._options.get("timeout", 5),
                socket_connect_timeout=5,
                socket_timeout=5,
            )
            batch = adds[self._shared_key] = _BatchedAdds(AsyncRedis(connection_pool=pool))
        try:
            return await batch.add(key, value, max(int(timeout), 1))
        except RedisError as error:
            raise CacheUnavailable(f"the shared cache is unavailable: {error}") from error

    # Publish/subscribe, for announcements every process must hear at once (the registry position).
    def publish(self, channel: str, message: str) -> None:
        channel = self.make_and_validate_key(channel)
        try:
            self._cache.get_client(channel, write=True).publish(channel, message)
        except RedisError as error:
            raise CacheUnavailable(f"the shared cache is unavailable: {error}") from error

    def subscription(self, channel: str) -> PubSub:
        """A subscription to `channel` on a connection of its own that never retries in place: a
        caller that sees it fail knows that messages may have been missed."""
        client = Redis.from_url(
            self._servers[0], retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, socket_timeout=5
        )
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.make_and_validate_key(channel))
        except RedisError as error:
            pubsub.close()
            raise CacheUnavailable(f"the shared cache is unavailable: {error}") from error
        return pubsub


class _BatchedAdds:
    """SET NX of many keys in few round trips: while IN_FLIGHT pipelines are on their way, the adds
    that arrive wait for one of them and then go together in the next. No add waits when fewer are
    in flight, and each stays atomic on its own (a chat ticket is used once however they are grouped)."""

    # One: the largest batches, the least CPU per add (a pipeline costs far more than a command in
    # it); chat handshakes were faster so than with 4 in flight (bench/chat_soak.py).
    IN_FLIGHT = 1

    def __init__(self, client: AsyncRedis):
        self.client = client
        self.waiting: list[tuple[str, int, int, asyncio.Future]] = []
        self.sending = 0

    async def add(self, key: str, value: int, timeout: int) -> bool:
        added = asyncio.get_running_loop().create_future()
        self.waiting.append((key, value, timeout, added))
        if self.sending < self.IN_FLIGHT:
            self.sending += 1
            asyncio.ensure_future(self._send())
        return await added

    async def _send(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                pipeline = self.client.pipeline(transaction=False)
                for key, value, timeout, _ in batch:
                    pipeline.set(key, value, ex=timeout, nx=True)
                try:
                    results = await pipeline.execute()
                except Exception as error:
                    for *_, added in batch:
                        if not added.done():
                            added.set_exception(error)
                    continue
                except BaseException:  # cancelled (the loop is closing): nobody is left waiting
                    for *_, added in batch + self.waiting:
                        added.cancel()
                    raise
                for (*_, added), result in zip(batch, results):
                    if not added.done():  # its caller may have gone
                        added.set_result(bool(result))
        finally:
            self.sending -= 1
