"""A Django cache backend on Redis, written against public APIs only (Django's BaseCache, redis-py),
for a cache that may be down and that thousands of connections share.

- Redis down: reads are misses and writes are skipped (the registry then answers from its
  database); operations whose answer matters (add, counting) raise CacheUnavailable.
- One redis-py client and pool per configuration and process, whatever the number of cache
  objects: Django makes one per thread and per asynchronous context (each WebSocket connection),
  and its own backend builds a client per operation (costly with redis-py 8) and a pool per object.
- Values are stored as Django's own Redis backend stores them (integers as such, anything else
  pickled), so either backend reads the other's keys.
"""

import asyncio
import logging
import pickle
import threading
import time
import weakref

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.utils.module_loading import import_string
from redis import ConnectionPool, Redis
from redis.asyncio import BlockingConnectionPool as AsyncBlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
_last_warning = 0.0


class CacheUnavailable(Exception):
    """The shared cache cannot be reached, for an operation that cannot do without it."""


def _warn(operation: str, error: Exception) -> None:
    global _last_warning
    if time.monotonic() - _last_warning > 10:  # once in a while, not once per request
        _last_warning = time.monotonic()
        logger.warning("Redis cache unavailable (%s: %s); reading through to the database", operation, error)


def _dumps(value) -> bytes | int:
    # As Django's RedisSerializer: integers stay integers (INCR works on them), bools do not.
    return value if type(value) is int else pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes):
    try:
        return int(data)
    except ValueError:
        return pickle.loads(data)


_clients: dict[tuple, Redis] = {}
# Per event loop: each configuration's redis.asyncio client, behind its batching of adds.
_async_adds: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


class RedisCache(BaseCache):
    """settings.CACHES backend "project.infra.redis_cache.RedisCache": LOCATION is a redis:// URL;
    OPTIONS are those of redis-py's pool (`pool_class` a dotted path, `max_connections`,
    `timeout`, `retry`, `retry_on_error`, …)."""

    def __init__(self, server, params):
        super().__init__(params)
        self.location = server if isinstance(server, str) else server[0]
        self.options = dict(params.get("OPTIONS", {}))
        self._shared_key = (self.location, repr(sorted(self.options.items())))
        with _clients_lock:
            client = _clients.get(self._shared_key)
            if client is None:
                options = dict(self.options)
                pool_class = options.pop("pool_class", None)
                pool_class = import_string(pool_class) if isinstance(pool_class, str) else pool_class or ConnectionPool
                client = _clients[self._shared_key] = Redis(
                    connection_pool=pool_class.from_url(self.location, **options)
                )
        self.client = client

    def get_backend_timeout(self, timeout=DEFAULT_TIMEOUT):
        if timeout == DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else max(0, int(timeout))

    def get(self, key, default=None, version=None):
        key = self.make_and_validate_key(key, version=version)
        try:
            value = self.client.get(key)
        except RedisError as error:
            _warn("get", error)
            return default
        return default if value is None else _loads(value)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key, timeout = self.make_and_validate_key(key, version=version), self.get_backend_timeout(timeout)
        try:
            if timeout == 0:
                self.client.delete(key)
            else:
                self.client.set(key, _dumps(value), ex=timeout)
        except RedisError as error:
            _warn("set", error)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key, timeout = self.make_and_validate_key(key, version=version), self.get_backend_timeout(timeout)
        try:
            if timeout == 0:
                added = bool(self.client.set(key, _dumps(value), nx=True))
                if added:
                    self.client.delete(key)
                return added
            return bool(self.client.set(key, _dumps(value), ex=timeout, nx=True))
        except RedisError as error:
            raise CacheUnavailable(f"the shared cache is unavailable: {error}") from error

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        key, timeout = self.make_and_validate_key(key, version=version), self.get_backend_timeout(timeout)
        try:
            return bool(self.client.persist(key) if timeout is None else self.client.expire(key, timeout))
        except RedisError as error:
            _warn("touch", error)
            return False

    def delete(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        try:
            return bool(self.client.delete(key))
        except RedisError as error:
            _warn("delete", error)
            return False

    def has_key(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        try:
            return bool(self.client.exists(key))
        except RedisError as error:
            _warn("has_key", error)
            return False

    def incr(self, key, delta=1, version=None):
        key = self.make_and_validate_key(key, version=version)
        try:
            if not self.client.exists(key):
                raise ValueError(f"Key '{key}' not found.")
            return self.client.incr(key, delta)
        except RedisError as error:
            raise CacheUnavailable(f"the shared cache is unavailable: {error}") from error

    def clear(self):
        try:
            return bool(self.client.flushdb())
        except RedisError as error:
            _warn("clear", error)
            return False

    def incr_with_expiry(self, key: str, timeout: int, amount: int = 1) -> int:
        """Count `amount` more for `key`, creating it to expire in `timeout` seconds: one round trip
        (incr() asks whether the key exists first)."""
        key = self.make_and_validate_key(key)
        try:
            pipeline = self.client.pipeline(transaction=False)
            pipeline.incr(key, amount)
            pipeline.expire(key, timeout, nx=True)  # NX: Redis 7 and later
            return pipeline.execute()[0]
        except RedisError as error:
            raise CacheUnavailable(f"the shared cache is unavailable: {error}") from error

    async def add_async(self, key: str, value: int, timeout: int) -> bool:
        """add() on an event loop without a thread: redis.asyncio, one client per loop, the adds
        of the moment in one round trip. Raises CacheUnavailable like add(). (Django's aadd() runs
        add() in a thread.)"""
        key = self.make_and_validate_key(key)
        adds = _async_adds.setdefault(asyncio.get_running_loop(), {})
        batch = adds.get(self._shared_key)
        if batch is None:
            # Sized and waiting like the sync pool (settings.CACHES); retries there are sync objects.
            pool = AsyncBlockingConnectionPool.from_url(
                self.location,
                max_connections=self.options.get("max_connections", 100),
                timeout=self.options.get("timeout", 5),
                socket_connect_timeout=5,
                socket_timeout=5,
            )
            batch = adds[self._shared_key] = _BatchedAdds(AsyncRedis(connection_pool=pool))
        try:
            return await batch.add(key, value, max(int(timeout), 1))
        except RedisError as error:
            raise CacheUnavailable(f"the shared cache is unavailable: {error}") from error


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
