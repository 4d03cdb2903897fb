"""The config watch socket: the config at once, then a message at every change that matters."""

import asyncio

import pytest
from channels.testing.websocket import WebsocketCommunicator

from config_registry.audit import Actor
from project.asgi import application
from tests.publishing import publish_next

pytestmark = pytest.mark.django_db(transaction=True)
ACTOR = Actor("admin:tester", may_write_security=True)


@pytest.fixture
def registry(make_layer, make_user):
    make_user("alice")
    make_layer("global", {"color": "grey", "db.password": "pw"}, secrets=["db.password"])
    make_layer("user:alice", {"theme": "dark"})
    make_layer("service:billing", {"currency": "EUR"})


def _watch(raw: str | None, query: str) -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {raw}".encode())] if raw else []
    return WebsocketCommunicator(application, f"/ws/config/?{query}", headers=headers)


def test_watch__connect_then_publish__current_config_then_each_change(registry, make_token):
    raw = make_token("config:read")

    async def scenario():
        socket = _watch(raw, "environment=prod&service=chat&user=alice")
        connected, _ = await socket.connect()
        assert connected
        first = await socket.receive_json_from(timeout=5)
        assert first["type"] == "config"
        assert first["values"] == {"color": "grey", "db.password": "********", "theme": "dark"}

        await publish_next("user:alice", {"theme": "light"})
        second = await socket.receive_json_from(timeout=5)
        assert second["values"]["theme"] == "light" and second["revision"] > first["revision"]

        await publish_next("service:billing", {"currency": "USD"})  # not in this context
        assert await socket.receive_nothing(timeout=0.3)

        await publish_next("global", {"db.password": "rotated"})  # a secret changed: pushed, still masked
        third = await socket.receive_json_from(timeout=5)
        assert third["values"]["db.password"] == "********" and third["revision"] > second["revision"]
        await socket.disconnect()

    asyncio.run(scenario())


def test_watch__secrets_read__revealed(registry, make_token):
    raw = make_token("config:read", "secrets:read")

    async def scenario():
        socket = _watch(raw, "environment=prod&service=chat")
        await socket.connect()
        assert (await socket.receive_json_from(timeout=5))["values"]["db.password"] == "pw"
        await socket.disconnect()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "scopes, limits, query, code, error",
    [
        (None, {}, "environment=prod&service=chat", 4401, "unauthorized"),
        (("audit:read",), {}, "environment=prod&service=chat", 4403, "forbidden"),
        (("config:read",), {"environments": ["staging"]}, "environment=prod&service=chat", 4403, "forbidden"),
        (("config:read",), {}, "environment=prod", 4400, "bad_request"),
        (("config:read",), {}, "environment=Prod!&service=chat", 4400, "bad_request"),
        (("config:read",), {}, "environment=prod&service=chat&user=carol", 4404, "not_found"),
    ],
)
def test_watch__refused__error_frame_then_close_code(registry, make_token, scopes, limits, query, code, error):
    raw = make_token(*scopes, **limits) if scopes else None

    async def scenario():
        socket = _watch(raw, query)
        connected, _ = await socket.connect()
        assert connected  # accepted first, so that the client sees the code
        frame = await socket.receive_json_from(timeout=5)
        assert frame["type"] == "error" and frame["code"] == error and frame["message"]
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": code}
        await socket.disconnect()  # as a client does: the consumer ends before the loop does

    asyncio.run(scenario())


def test_watch__many_watchers__one_batched_resolution_per_move_no_read_per_socket(
    registry, make_token, make_user, monkeypatch
):
    from config_registry import consumers
    from config_registry.live import watchers

    raw = make_token("config:read")
    users = [f"user{i}" for i in range(20)]
    for name in users:
        make_user(name)
    batched, single = [], []
    resolve_many, resolve_one = watchers.contexts_resolve, consumers.config_resolve
    monkeypatch.setattr(watchers, "contexts_resolve", lambda *a, **k: batched.append(a) or resolve_many(*a, **k))
    monkeypatch.setattr(consumers, "config_resolve", lambda **k: single.append(k) or resolve_one(**k))

    async def scenario():
        sockets = []
        for name in [*users, None]:
            socket = _watch(raw, "environment=prod&service=chat" + (f"&user={name}" if name else ""))
            await socket.connect()
            assert (await socket.receive_json_from(timeout=5))["values"]["color"] == "grey"
            sockets.append(socket)
        single.clear()
        await publish_next("global", {"color": "blue"})
        for socket in sockets:
            assert (await socket.receive_json_from(timeout=5))["values"]["color"] == "blue"
        assert single == []  # no socket read on its own
        assert len(batched) == 1 and batched[0][:2] == ("prod", "chat") and set(batched[0][2]) == {*users, None}
        for socket in sockets:
            await socket.disconnect()

    asyncio.run(scenario())
