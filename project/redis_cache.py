"""Django's Redis cache backend, keeping one redis-py client per connection pool.

Django builds a new redis.Redis for every cache operation; with redis-py 8 that costs more than
the network round trip (each client builds its own table of response callbacks). The clients
are thread-safe and share the pool, so one per pool is enough.
"""

from django.core.cache.backends import redis


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


class RedisCache(redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

    def incr_with_expiry(self, key: str, timeout: int) -> int:
        """Count one more for `key`, creating it to expire in `timeout` seconds: one round trip
        (Django's incr() asks whether the key exists first)."""
        key = self.make_and_validate_key(key)
        pipeline = self._cache.get_client(key, write=True).pipeline(transaction=False)
        pipeline.incr(key)
        pipeline.expire(key, timeout, nx=True)
        return pipeline.execute()[0]
