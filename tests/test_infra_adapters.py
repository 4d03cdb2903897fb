"""The adapters over dependencies (project/infra): where one relies on a dependency's private
behaviour, a test here fails on the upgrade that changes it."""

import asyncio
import inspect
import textwrap

import pytest
from django.conf import settings


def _body(function) -> str:
    """A function's code without its docstring, dedented (what an upgrade would change)."""
    lines = textwrap.dedent(inspect.getsource(function)).splitlines()
    source = "\n".join(lines)
    docstring = inspect.getdoc(function)
    if docstring is not None:
        start = source.index('"""')
        source = source[:start] + source[source.index('"""', start + 3) + 3 :]
    return "\n".join(line for line in source.splitlines() if line.strip())


# project.infra.consumers: channels' dispatch and websocket_disconnect, as WithoutThreadHop copies them.
CHANNELS_DISPATCH = """\
async def dispatch(self, message):
    handler = getattr(self, get_handler_name(message), None)
    if handler:
        await aclose_old_connections()
        await handler(message)
    else:
        raise ValueError("No handler for message type %s" % message["type"])"""

CHANNELS_WEBSOCKET_DISCONNECT = """\
async def websocket_disconnect(self, message):
    try:
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
    except AttributeError:
        raise InvalidChannelLayerError(
            "BACKEND is unconfigured or doesn't support groups"
        )
    await self.disconnect(message["code"])
    await aclose_old_connections()
    raise StopConsumer()"""


def test_channels_consumer__dispatch_and_disconnect_as_without_thread_hop_assumes():
    from channels.consumer import AsyncConsumer
    from channels.generic.websocket import AsyncWebsocketConsumer

    # If this fails, channels changed what WithoutThreadHop replaces: compare, adapt, update here.
    assert _body(AsyncConsumer.dispatch) == CHANNELS_DISPATCH
    assert _body(AsyncWebsocketConsumer.websocket_disconnect) == CHANNELS_WEBSOCKET_DISCONNECT


def test_without_thread_hop__routes_as_channels_and_ends_on_disconnect():
    from channels.exceptions import StopConsumer

    from project.infra.consumers import WithoutThreadHop

    class Probe(WithoutThreadHop):
        def __init__(self):
            self.seen = []

        async def websocket_receive(self, message):
            self.seen.append(message["text"])

        async def disconnect(self, code):
            self.seen.append(code)

    async def scenario():
        probe = Probe()
        await probe.dispatch({"type": "websocket.receive", "text": "hi"})
        with pytest.raises(ValueError, match="No handler for message type chat.nothing"):
            await probe.dispatch({"type": "chat.nothing"})
        with pytest.raises(StopConsumer):
            await probe.dispatch({"type": "websocket.disconnect", "code": 1000})
        assert probe.seen == ["hi", 1000]

    asyncio.run(scenario())


# project.infra.channel_layer: group_add in one pipeline, on channels_redis's key layout ----------


@pytest.fixture
def redis_url():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://… (the adapters are tested on a real server)")
    return settings.REDIS_URL


def test_channel_layer__group_add_leaves_what_channels_redis_own_leaves(redis_url):
    from channels_redis.core import RedisChannelLayer

    from project.infra.channel_layer import ResilientRedisChannelLayer

    async def membership(layer, group):
        connection = layer.connection(layer.consistent_hash(group))
        key = layer._group_key(group)
        return await connection.zrange(key, 0, -1), await connection.ttl(key)

    async def scenario():
        ours = ResilientRedisChannelLayer(hosts=[redis_url], prefix="adapter-test", group_expiry=321)
        theirs = RedisChannelLayer(hosts=[redis_url], prefix="adapter-test", group_expiry=321)
        try:
            assert await ours.group_add("ours", "relay.a") == 1  # new: the relay's sign of a gap
            assert await ours.group_add("ours", "relay.a") == 0
            await theirs.group_add("theirs", "relay.a")
            (our_members, our_ttl), (their_members, their_ttl) = [
                await membership(ours, group) for group in ("ours", "theirs")
            ]
            assert our_members == their_members == [b"relay.a"]
            assert 300 < our_ttl <= 321 and 300 < their_ttl <= 321
        finally:
            await ours.flush()
            await theirs.close_pools()
            await ours.close_pools()

    asyncio.run(scenario())


# project.infra.redis_cache: public APIs only, and what Django's own backend stores -------------


@pytest.fixture
def two_backends(redis_url):
    from django.core.cache.backends.redis import RedisCache as DjangosRedisCache

    from project.infra.redis_cache import RedisCache

    params = {"KEY_PREFIX": "adapter-test", "OPTIONS": {}}
    ours, djangos = RedisCache(redis_url, params), DjangosRedisCache(redis_url, params)
    yield ours, djangos
    ours.clear()


def test_redis_cache__reads_and_writes_what_djangos_redis_backend_does(two_backends):
    ours, djangos = two_backends
    djangos.set("counter", 41)
    djangos.set("object", {"a": [1, 2]})
    assert (ours.get("counter"), ours.get("object")) == (41, {"a": [1, 2]})
    assert ours.incr("counter") == 42 and djangos.get("counter") == 42
    ours.set("flag", True)
    assert djangos.get("flag") is True


def test_redis_cache__the_cache_api_as_django_defines_it(two_backends):
    ours, _ = two_backends
    assert ours.get("missing", "default") == "default"
    assert ours.add("once", 1, timeout=60) and not ours.add("once", 2, timeout=60)
    assert ours.get("once") == 1 and ours.has_key("once")
    ours.set("gone", "x", timeout=0)  # Django: a timeout of 0 expires at once
    assert not ours.has_key("gone")
    assert ours.touch("once", timeout=None) and ours.client.ttl(ours.make_key("once")) == -1
    assert ours.delete("once") and not ours.delete("once")
    with pytest.raises(ValueError):
        ours.incr("never-set")
    ours.set_many({"m1": 1, "m2": 2})
    assert ours.get_many(["m1", "m2", "m3"]) == {"m1": 1, "m2": 2}
    assert ours.incr_with_expiry("window", 60, 3) == 3 and 0 < ours.client.ttl(ours.make_key("window")) <= 60


def test_redis_cache__every_cache_object_of_a_configuration_shares_one_client(redis_url):
    from project.infra.redis_cache import RedisCache

    params = {"KEY_PREFIX": "adapter-test", "OPTIONS": {"max_connections": 7}}
    first, second = RedisCache(redis_url, params), RedisCache(redis_url, params)
    other = RedisCache(redis_url, {"KEY_PREFIX": "adapter-test", "OPTIONS": {"max_connections": 8}})
    assert first.client is second.client and first.client is not other.client


# project.infra.redis_socket: a subscription's socket, asked directly ------------------------------


def test_redis_socket__says_when_a_subscription_has_bytes_waiting(redis_url):
    from redis import Redis

    from project.infra.redis_socket import bytes_waiting

    client = Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        assert bytes_waiting(pubsub) is None  # no connection yet: unknown
        pubsub.subscribe("adapter-test")
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        assert bytes_waiting(pubsub) is False
        client.publish("adapter-test", "hello")  # returns once Redis has written it to the subscriber
        assert bytes_waiting(pubsub) is True
        assert pubsub.get_message(timeout=5)["data"] == b"hello"
        assert bytes_waiting(pubsub) is False
    finally:
        pubsub.close()
        client.close()


# project.infra.dotenv_bindings: python-dotenv's undocumented parse_stream, checked against its public
# dotenv_values on every construct import_env relies on.
DOTENV_CONSTRUCTS = """\
# a comment
export EXPORTED=1
PLAIN=value # trailing comment
SINGLE='single quoted'
DOUBLE="double \\"escaped\\""
MULTI="line one
line two"
EMPTY=
BARE
DUPLICATE=first
DUPLICATE=second
not a binding
SPACED = spaced value
"""


def test_dotenv_bindings__agree_with_dotenv_values_and_report_lines():
    import io

    from dotenv import dotenv_values

    from project.infra.dotenv_bindings import env_bindings

    bindings = list(env_bindings(DOTENV_CONSTRUCTS))
    last = {binding.name: binding.value for binding in bindings if binding.name is not None}
    assert last == dotenv_values(stream=io.StringIO(DOTENV_CONSTRUCTS), interpolate=False)
    assert [b.line for b in bindings if b.name == "DUPLICATE"] == [10, 11]
    assert [b.line for b in bindings if b.name is None] == [12]  # what python-dotenv skips
    quoted = {binding.name for binding in bindings if binding.quoted}
    assert quoted == {"SINGLE", "DOUBLE", "MULTI"}
