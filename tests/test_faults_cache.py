"""The shared cache (Redis) down: reads go to the database, limits stop counting, single-use
tickets cannot be checked (so chat connections are refused with 1013, never accepted twice)."""

import asyncio
import secrets
import socket

import pytest
from channels.testing.websocket import WebsocketCommunicator

from chat.tickets import ticket_issue
from config_registry.exceptions import CacheUnavailable
from config_registry.ratelimit import window_count


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return port


@pytest.fixture
def redis_down(settings):
    down = {
        "BACKEND": "project.infra.redis_cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        "OPTIONS": {"socket_connect_timeout": 1},
    }
    settings.CACHES = {"default": down, "tickets": {**down, "KEY_PREFIX": "tickets"}}
    from django.core.cache import cache

    return cache


def test_cache_down__reads_miss_writes_skip_counting_and_add_raise(redis_down):
    assert redis_down.get("anything", "default") == "default"
    redis_down.set("anything", 1)  # no error: skipped
    with pytest.raises(CacheUnavailable):
        redis_down.add("once", 1)
    assert window_count("someone", 60)[0] == 0  # not counted, not refused


def test_cache_down__resolve_still_answers_from_the_database(redis_down, api, make_layer, make_token):
    make_layer("global", {"feature.flag": True})
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('config:read')}")
    response = api.get("/api/v1/resolve", {"environment": "prod", "service": "chat"})
    assert response.status_code == 200 and response.json()["values"] == {"feature.flag": True}


@pytest.mark.django_db(transaction=True)
def test_cache_down__chat_connection_refused_with_1013_not_1011(redis_down, make_layer, make_user):
    from project.asgi import application

    make_user("alice")
    make_layer("global", {"chat.signing_keys": [secrets.token_urlsafe(32)]}, secrets=["chat.signing_keys"])
    ticket = ticket_issue(username="alice").token

    async def scenario():
        socket_ = WebsocketCommunicator(application, f"/ws/chat/lobby/?ticket={ticket}")
        assert (await socket_.connect())[0]
        frame = await socket_.receive_json_from(timeout=10)
        assert (frame["type"], frame["code"]) == ("error", "unavailable")
        assert await socket_.receive_output(timeout=10) == {"type": "websocket.close", "code": 1013}
        await socket_.disconnect()  # as a client does: the consumer ends before the loop does

    asyncio.run(scenario())


def test_channel_layer_down__chat_connection_refused_with_1013(chat_ready, monkeypatch):
    from channels.layers import InMemoryChannelLayer

    from project.asgi import application

    async def broken(self, group, channel):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(InMemoryChannelLayer, "group_add", broken)

    async def scenario():
        socket_ = WebsocketCommunicator(application, f"/ws/chat/lobby/?ticket={chat_ready}")
        assert (await socket_.connect())[0]
        assert (await socket_.receive_json_from(timeout=10))["code"] == "unavailable"
        assert await socket_.receive_output(timeout=10) == {"type": "websocket.close", "code": 1013}
        await socket_.disconnect()  # as a client does: the consumer ends before the loop does

    asyncio.run(scenario())


@pytest.fixture
def chat_ready(transactional_db, make_layer, make_user, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    make_user("alice")
    make_layer("global", {"chat.signing_keys": [secrets.token_urlsafe(32)]}, secrets=["chat.signing_keys"])
    return ticket_issue(username="alice").token
