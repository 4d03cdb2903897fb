"""The chat end to end: real uvicorn processes on free ports, the `websockets` client."""

import asyncio
import json
import secrets

import pytest
import websockets
from django.conf import settings

from chat.tickets import ticket_issue

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "chat.signing_keys"


@pytest.fixture
def chat(make_layer, make_user):
    for name in ("alice", "bob"):
        make_user(name)
    make_layer("global", {KEY: [secrets.token_urlsafe(32)], "chat.rate_limit_per_minute": 1000}, secrets=[KEY])


@pytest.fixture
def redis_layer():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://… (processes share rooms through channels_redis)")


def _url(address: str, room: str, username: str) -> str:
    return f"ws://{address}/ws/chat/{room}/?ticket={ticket_issue(username=username).token}"


async def _open(url: str):
    socket = await websockets.connect(url, open_timeout=60, origin=None)
    frames = [json.loads(await asyncio.wait_for(socket.recv(), 60)) for _ in range(2)]
    assert [frame["type"] for frame in frames] == ["history", "config"], frames
    return socket


async def _next_message(socket) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
        if frame["type"] == "message":
            return frame


def test_chat_e2e__two_users_in_a_room__exchange_messages(chat, server_processes):
    address, log = server_processes()
    alice_url, bob_url = _url(address, "lobby", "alice"), _url(address, "lobby", "bob")

    async def scenario():
        alice, bob = await _open(alice_url), await _open(bob_url)
        await alice.send(json.dumps({"type": "message", "text": "hi bob"}))
        assert (await _next_message(bob))["text"] == "hi bob"
        assert (await _next_message(alice))["text"] == "hi bob"  # the room includes the sender
        await bob.send(json.dumps({"type": "message", "text": "hi alice"}))
        received = await _next_message(alice)
        assert (received["user"], received["text"]) == ("bob", "hi alice")
        await alice.close()
        await bob.close()

    asyncio.run(scenario())
    logged = log.read_text()
    assert "/ws/chat/lobby/?ticket=[redacted]" in logged  # the handshake is logged, its ticket is not
    assert alice_url.split("ticket=")[1] not in logged and bob_url.split("ticket=")[1] not in logged


def test_chat_e2e__frame_over_64_kib__server_closes_with_1009(chat, server_processes):
    address, _ = server_processes()
    url = _url(address, "lobby", "alice")

    async def scenario():
        socket = await _open(url)
        await socket.send(json.dumps({"type": "message", "text": "x" * 70_000}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 30)
        assert closed.value.rcvd.code == 1009

    asyncio.run(scenario())


def test_chat_e2e__foreign_origin__refused(chat, server_processes):
    address, _ = server_processes()
    url = _url(address, "lobby", "alice")

    async def scenario():
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, origin="http://evil.example", open_timeout=60)
        assert refused.value.response.status_code == 403

    asyncio.run(scenario())


def test_chat_e2e__two_processes_share_a_room_through_redis(chat, redis_layer, server_processes):
    first, second = server_processes()[0], server_processes()[0]
    alice_url, bob_url = _url(first, "lobby", "alice"), _url(second, "lobby", "bob")

    async def scenario():
        alice, bob = await _open(alice_url), await _open(bob_url)
        await alice.send(json.dumps({"type": "message", "text": "across processes"}))
        assert (await _next_message(bob))["text"] == "across processes"
        await alice.close()
        await bob.close()

    asyncio.run(scenario())


def test_chat_e2e__300_clients_join_one_room_at_once__all_connect_and_receive(chat, redis_layer, server_processes):
    """channels_redis's default pool raised "Too many connections" (HTTP 500) at 100 joins."""
    address, log = server_processes()
    urls = [_url(address, "crowd", "alice") for _ in range(300)]

    async def scenario():
        sockets = await asyncio.gather(*(_open(url) for url in urls))
        await sockets[0].send(json.dumps({"type": "message", "text": "hello everyone"}))
        received = await asyncio.gather(*(_next_message(socket) for socket in sockets))
        assert {frame["text"] for frame in received} == {"hello everyone"}
        await asyncio.gather(*(socket.close() for socket in sockets))

    try:
        asyncio.run(scenario())
    except Exception:
        raise AssertionError("the server's log:\n" + log.read_text()[-3000:]) from None
    assert "Too many connections" not in log.read_text()


def test_chat_e2e__idle_connections_through_redis__stay_open_without_errors(chat, redis_layer, server_processes):
    """Idle consumers wait on Redis (BZPOPMIN, 5 s at a time): no read timeout may kill them."""
    address, log = server_processes()
    urls = [_url(address, "idle", "alice") for _ in range(20)]

    async def scenario():
        sockets = await asyncio.gather(*(_open(url) for url in urls))
        await asyncio.sleep(12)  # the subject of the test: two and more of channels_redis's waits
        await sockets[0].send(json.dumps({"type": "message", "text": "still there?"}))
        received = await asyncio.gather(*(_next_message(socket) for socket in sockets))
        assert {frame["text"] for frame in received} == {"still there?"}
        await asyncio.gather(*(socket.close() for socket in sockets))

    asyncio.run(scenario())
    assert "Exception in ASGI application" not in log.read_text()
