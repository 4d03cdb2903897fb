"""The one announcement of a commit (state.registry_moved through live.broadcast) and the memory of
one position (memory.PositionMemo)."""

import asyncio
import socket
import threading

import pytest
from django.conf import settings

from config_registry import state
from config_registry.live.broadcast import BroadcastUnavailable, LocalBroadcaster, RedisBroadcaster
from config_registry.memory import PositionMemo, memos_clear
from config_registry.state import Position
from tests.publishing import publish_next

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _next(queue: asyncio.Queue, timeout: float = 10):
    return await asyncio.wait_for(queue.get(), timeout)


def test_commit__listeners_on_an_event_loop_hear_the_new_position_once(make_layer):
    make_layer("global", {"a": 1})

    async def scenario():
        heard: asyncio.Queue = asyncio.Queue()
        await state.broadcaster().listen(heard.put_nowait)
        try:
            await publish_next("global", {"a": 2})  # committed in a database thread
            position = await _next(heard)
            assert position == state.database_position()
            await publish_next("global", {"a": 3})
            assert (await _next(heard)).revision == position.revision + 1  # the next one, not a repeat
            assert heard.empty()
        finally:
            state.broadcaster().unlisten(heard.put_nowait)
        assert state.broadcaster().listening() == 0

    asyncio.run(scenario())


def test_local_broadcaster__announced_from_another_thread__delivered_on_the_loop():
    broadcaster = LocalBroadcaster(parse=None)

    async def scenario():
        loop, heard = asyncio.get_running_loop(), asyncio.Queue()

        def on_the_loop(position):
            assert asyncio.get_running_loop() is loop  # never on the announcing thread
            heard.put_nowait(position)

        await broadcaster.listen(on_the_loop)
        thread = threading.Thread(target=broadcaster.announce, args=(Position("e", 7, 1),))
        thread.start()
        thread.join()
        assert await _next(heard) == Position("e", 7, 1)
        broadcaster.unlisten(on_the_loop)

    asyncio.run(scenario())


def test_redis_broadcaster__redis_unreachable__listening_refused_and_commits_still_stand():
    broadcaster = RedisBroadcaster(state._position_parse, location=f"redis://127.0.0.1:{_free_port()}/0")

    async def scenario():
        with pytest.raises(BroadcastUnavailable):
            await broadcaster.listen(lambda position: None)
        assert broadcaster.listening() == 0

    asyncio.run(scenario())
    broadcaster.announce(Position("e", 1, 0))  # logged, not raised: the commit already happened
    assert broadcaster.pushed() is None  # request threads read the database


def test_config_watch__broadcaster_down__refused_with_1013(make_layer, make_token, monkeypatch):
    from channels.testing import WebsocketCommunicator

    from project.asgi import application

    monkeypatch.setattr(
        state, "_broadcaster", RedisBroadcaster(state._position_parse, location=f"redis://127.0.0.1:{_free_port()}/0")
    )
    make_layer("service:chat", {"a": 1})
    raw = make_token("config:read")

    async def scenario():
        socket_ = WebsocketCommunicator(
            application,
            "/ws/config/?environment=dev&service=chat",
            headers=[(b"authorization", f"Bearer {raw}".encode())],
        )
        assert (await socket_.connect())[0]
        assert (await socket_.receive_json_from(timeout=10))["code"] == "unavailable"
        assert await socket_.receive_output(timeout=10) == {"type": "websocket.close", "code": 1013}
        await socket_.disconnect()

    asyncio.run(scenario())


@pytest.fixture
def redis_broadcaster():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://… (the broadcaster's pub/sub)")
    from redis import Redis

    client = Redis.from_url(settings.REDIS_URL)
    yield state.broadcaster(), client
    client.close()


def test_redis_broadcaster__subscription_lost__listeners_told_to_look_again(redis_broadcaster, monkeypatch):
    broadcaster, client = redis_broadcaster
    monkeypatch.setattr(RedisBroadcaster, "RETRY_SECONDS", (0.01, 0.05))

    async def scenario():
        heard: asyncio.Queue = asyncio.Queue()
        await broadcaster.listen(heard.put_nowait)
        try:
            assert client.client_kill_filter(_type="pubsub") >= 1  # as when Redis restarts
            assert await _next(heard) is None  # back, and announcements may have been missed
            client.publish(broadcaster.channel, "e:5:1")
            assert await _next(heard) == Position("e", 5, 1)  # and it hears again
        finally:
            broadcaster.unlisten(heard.put_nowait)

    asyncio.run(scenario())


# The memory of one position -------------------------------------------------------------------


def test_position_memo__values_of_one_position_only():
    memo = PositionMemo("test", 10)
    memo.put(Position("e", 1, 0), "alice", {"a": 1})
    assert memo.get(Position("e", 1, 0), "alice") == {"a": 1}
    assert memo.get(Position("e", 2, 0), "alice") is None  # not at another position
    memo.put(Position("e", 2, 0), "bob", {"b": 1})
    assert memo.get(Position("e", 1, 0), "alice") is None  # the previous position's values are gone
    assert len(memo) == 1


def test_position_memo__depends_on_a_part_of_the_position():
    tokens = PositionMemo("tokens", 10, depends_on=lambda position: (position[0], position[2]))
    tokens.put(Position("e", 1, 7), "digest", "token")
    assert tokens.get(Position("e", 99, 7), "digest") == "token"  # a publish does not touch tokens
    assert tokens.get(Position("e", 1, 8), "digest") is None  # a token change does


def test_position_memo__bounded__least_recently_used_goes_first():
    memo, at = PositionMemo("test", 2), Position("e", 1, 0)
    memo.put(at, "a", 1)
    memo.put(at, "b", 2)
    assert memo.get(at, "a") == 1  # a is used again
    memo.put(at, "c", 3)
    assert (memo.get(at, "a"), memo.get(at, "b"), memo.get(at, "c")) == (1, None, 3)


def test_position_memo__forgotten_by_the_one_reset_and_when_settings_change(settings):
    memo, at = PositionMemo("test", 2), Position("e", 1, 0)
    memo.put(at, "a", 1)
    memos_clear()
    assert memo.get(at, "a") is None
    memo.put(at, "a", 1)
    settings.REGISTRY_ENVIRONMENT = "elsewhere"  # Django's setting_changed
    assert memo.get(at, "a") is None


def test_position_memo__threads_putting_and_getting__bounded_and_consistent():
    memo, errors = PositionMemo("test", 100), []

    def work(offset: int) -> None:
        try:
            for i in range(2_000):
                at = Position("e", i // 500, 0)
                memo.put(at, (offset, i), i)
                value = memo.get(at, (offset, i))
                assert value in (i, None)  # None only if another thread moved the position on
        except AssertionError as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(memo) <= 100


def test_broadcaster__chosen_in_settings__changed_with_them(settings):
    settings.REGISTRY_BROADCASTER = {"BACKEND": "config_registry.live.broadcast.LocalBroadcaster"}
    assert type(state.broadcaster()) is LocalBroadcaster
    settings.REGISTRY_BROADCASTER = {
        "BACKEND": "config_registry.live.broadcast.RedisBroadcaster",
        "location": f"redis://127.0.0.1:{_free_port()}/3",
    }
    chosen = state.broadcaster()
    assert type(chosen) is RedisBroadcaster and chosen.channel == "config-registry:positions:3"
