"""The chat consumer with Channels' communicator: tickets, close codes, error frames, limits,
live configuration and signing-key rotation."""

import asyncio
import base64
import json
import secrets
from datetime import timedelta

import jwt
import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.utils import timezone

from chat.models import Message
from chat.tickets import ALGORITHM, key_id, ticket_issue
from config_registry.asyncdb import db_call
from config_registry.audit import Actor
from project.asgi import application
from tests.publishing import publish_next

pytestmark = pytest.mark.django_db(transaction=True)
ACTOR = Actor("admin:tester", may_write_security=True)
KEY = "chat.signing_keys"


@pytest.fixture
def old_key():
    return secrets.token_urlsafe(32)


@pytest.fixture
def chat(make_layer, make_user, old_key):
    """Signing keys in global, chat limits for the chat service, users alice, bob and zoë."""
    for name in ("alice", "bob", "zoë"):
        make_user(name)
    make_layer(
        "global",
        {KEY: [old_key], "chat.max_message_length": 20, "chat.rate_limit_per_minute": 5, "chat.welcome_message": "hi"},
        secrets=[KEY],
    )
    make_layer("service:chat", {"chat.enabled": True})


def _socket(room: str, ticket: str | None) -> WebsocketCommunicator:
    query = f"?ticket={ticket}" if ticket is not None else ""
    return WebsocketCommunicator(application, f"/ws/chat/{room}/{query}")


async def _join(room: str, username: str) -> tuple[WebsocketCommunicator, dict, dict]:
    ticket = await db_call(ticket_issue)(username=username)
    socket = _socket(room, ticket.token)
    connected, _ = await socket.connect()
    assert connected
    history = await socket.receive_json_from(timeout=5)
    config = await socket.receive_json_from(timeout=5)
    return socket, history, config


async def _closed_with(socket: WebsocketCommunicator, code: int, error: str | None = None) -> dict | None:
    frame = None
    if error:
        frame = await socket.receive_json_from(timeout=5)
        assert (frame["type"], frame["code"]) == ("error", error), frame
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": code}
    await socket.disconnect()  # as a client does: the consumer ends before the loop does
    return frame


async def _publish(ref: str, values: dict, unset=()) -> None:
    await publish_next(ref, values, unset=unset, secrets=[KEY] if KEY in values else [])


def _run(coroutine):
    asyncio.run(coroutine)


# Connecting -----------------------------------------------------------------------------------


def test_chat__valid_ticket__history_then_non_secret_chat_config(chat):
    async def scenario():
        socket, history, config = await _join("lobby", "alice")
        assert history == {"type": "history", "messages": []}
        assert config == {
            "type": "config",
            "values": {
                "chat.enabled": True,
                "chat.max_message_length": 20,
                "chat.rate_limit_per_minute": 5,
                "chat.welcome_message": "hi",
            },
        }
        await socket.disconnect()

    _run(scenario())


def test_chat__two_users__messages_reach_the_room_and_are_stored(chat):
    async def scenario():
        alice, _, _ = await _join("lobby", "alice")
        bob, _, _ = await _join("lobby", "bob")
        elsewhere, _, _ = await _join("other", "zoë")
        await alice.send_json_to({"type": "message", "text": "hello bob"})
        for socket in (alice, bob):
            received = await socket.receive_json_from(timeout=5)
            assert {k: received[k] for k in ("type", "user", "text")} == {
                "type": "message",
                "user": "alice",
                "text": "hello bob",
            }
            assert received["id"] and received["at"]
        assert await elsewhere.receive_nothing(timeout=0.2)
        for socket in (alice, bob, elsewhere):
            await socket.disconnect()

    _run(scenario())
    assert list(Message.objects.values_list("room", "user__username", "text")) == [("lobby", "alice", "hello bob")]


def test_chat__history__last_50_of_the_room_oldest_first(chat):
    from django.contrib.auth.models import User

    alice = User.objects.get(username="alice")
    Message.objects.bulk_create([Message(room="lobby", user=alice, text=f"m{i}") for i in range(55)])
    Message.objects.create(room="other", user=alice, text="not here")

    async def scenario():
        socket, history, _ = await _join("lobby", "bob")
        assert [m["text"] for m in history["messages"]] == [f"m{i}" for i in range(5, 55)]
        await socket.disconnect()

    _run(scenario())


def test_chat__non_ascii_user_and_room__work(chat):
    async def scenario():
        socket, _, _ = await _join("café-☕ salon", "zoë")
        await socket.send_json_to({"type": "message", "text": "ça marche ✓"})
        received = await socket.receive_json_from(timeout=5)
        assert (received["user"], received["text"]) == ("zoë", "ça marche ✓")
        await socket.disconnect()

    _run(scenario())


# Refusals ------------------------------------------------------------------------------------


def _forge(
    claims: dict, key: str, *, kid: str | None = None, headers: dict | None = None, algorithm: str = ALGORITHM
) -> str:
    now = timezone.now()
    payload = {"sub": "alice", "aud": "chat", "exp": now + timedelta(seconds=60), "jti": secrets.token_hex(8), **claims}
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid or key_id(key), **(headers or {})})


def _unsigned(header: dict, claims: dict) -> str:
    encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{encode(header)}.{encode(claims)}."


@pytest.mark.parametrize(
    "forge",
    [
        "missing",
        "garbage",
        "expired",
        "wrong_audience",
        "unknown_kid",
        "alg_none",
        "alg_rs256",
        "unknown_user",
        "inactive_user",
        "no_jti",
    ],
)
def test_chat__bad_ticket__error_frame_then_4401(chat, old_key, forge):
    from django.contrib.auth.models import User

    exp = int((timezone.now() + timedelta(seconds=60)).timestamp())
    tickets = {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": _forge({"exp": timezone.now() - timedelta(seconds=5)}, old_key),
        "wrong_audience": _forge({"aud": "billing"}, old_key),
        "unknown_kid": _forge({}, secrets.token_urlsafe(32)),
        "alg_none": _unsigned(
            {"alg": "none", "kid": key_id(old_key)}, {"sub": "alice", "aud": "chat", "exp": exp, "jti": "x"}
        ),
        "alg_rs256": _unsigned(
            {"alg": "RS256", "kid": key_id(old_key)}, {"sub": "alice", "aud": "chat", "exp": exp, "jti": "y"}
        )
        + "c2lnbmF0dXJl",
        "unknown_user": _forge({"sub": "mallory"}, old_key),
        "inactive_user": _forge({"sub": "bob"}, old_key),
        "no_jti": jwt.encode(
            {"sub": "alice", "aud": "chat", "exp": exp}, old_key, algorithm="HS256", headers={"kid": key_id(old_key)}
        ),
    }
    User.objects.filter(username="bob").update(is_active=False)

    async def scenario():
        socket = _socket("lobby", tickets[forge])
        connected, _ = await socket.connect()
        assert connected  # accepted, then closed: every client sees the code
        frame = await _closed_with(socket, 4401, "unauthorized")
        assert "ticket" in frame["message"]

    _run(scenario())


def test_chat__ticket_used_twice__second_use_4401(chat):
    async def scenario():
        ticket = await db_call(ticket_issue)(username="alice")
        first = _socket("lobby", ticket.token)
        await first.connect()
        await first.receive_json_from(timeout=5)
        second = _socket("lobby", ticket.token)
        await second.connect()
        frame = await _closed_with(second, 4401, "unauthorized")
        assert "already used" in frame["message"]
        await first.disconnect()

    _run(scenario())


def test_chat__chat_disabled_for_user__4403(chat, make_layer):
    make_layer("user:bob", {"chat.enabled": False})

    async def scenario():
        ticket = await db_call(ticket_issue)(username="bob")
        socket = _socket("lobby", ticket.token)
        await socket.connect()
        frame = await _closed_with(socket, 4403, "forbidden")
        assert "chat.enabled" in frame["message"]

    _run(scenario())


def test_chat__room_not_allowed__4403(chat, make_layer):
    make_layer("user:bob", {"chat.allowed_rooms": ["support"]})

    async def scenario():
        ticket = await db_call(ticket_issue)(username="bob")
        socket = _socket("lobby", ticket.token)
        await socket.connect()
        assert "chat.allowed_rooms" in (await _closed_with(socket, 4403, "forbidden"))["message"]
        allowed, _, _ = await _join("support", "bob")
        await allowed.disconnect()

    _run(scenario())


def test_chat__room_name_too_long__4400(chat):
    async def scenario():
        ticket = await db_call(ticket_issue)(username="alice")
        socket = _socket("x" * 101, ticket.token)
        await socket.connect()
        await _closed_with(socket, 4400, "bad_request")

    _run(scenario())


def test_chat__registry_unavailable__1013_never_1011(chat, monkeypatch):
    from chat import tickets
    from config_registry.exceptions import RegistryUnavailable

    async def scenario():
        ticket = await db_call(ticket_issue)(username="alice")

        def down(*args, **kwargs):
            raise RegistryUnavailable("the registry database is unavailable: connection refused")

        monkeypatch.setattr(tickets, "security_secret", down)
        socket = _socket("lobby", ticket.token)
        await socket.connect()
        await _closed_with(socket, 1013, "unavailable")

    _run(scenario())


def test_chat__signing_keys_removed_from_registry__1013_and_ticket_endpoint_503(chat, client):
    async def scenario():
        ticket = await db_call(ticket_issue)(username="alice")
        await _publish("global", {}, unset=[KEY])
        socket = _socket("lobby", ticket.token)
        await socket.connect()
        await _closed_with(socket, 1013, "unavailable")

    _run(scenario())
    client.login(username="alice", password="pw-alice")
    response = client.post("/api/v1/chat/ticket", {}, content_type="application/json")
    assert response.status_code == 503
    assert "chat.signing_keys is not published" in response.json()["message"]


# Messages ------------------------------------------------------------------------------------


def test_chat__breaches__error_frames_and_the_connection_stays(chat):
    async def scenario():
        socket, _, _ = await _join("lobby", "alice")
        for frame, code in [
            ("not json", "bad_request"),
            ('{"type": "message"}', "bad_request"),
            ('{"type": "message", "text": 5}', "bad_request"),
            ("[1, 2]", "bad_request"),
            ('{"type": "message", "text": "   "}', "bad_request"),
            (json.dumps({"type": "message", "text": "x" * 21}), "too_long"),
        ]:
            await socket.send_to(text_data=frame)
            error = await socket.receive_json_from(timeout=5)
            assert (error["type"], error["code"]) == ("error", code) and error["message"]
        await socket.send_json_to({"type": "message", "text": "still here"})
        assert (await socket.receive_json_from(timeout=5))["text"] == "still here"
        await socket.disconnect()

    _run(scenario())
    assert Message.objects.count() == 1


def test_chat__rate_limit__sixth_message_in_a_minute_refused(chat):
    async def scenario():
        socket, _, _ = await _join("lobby", "alice")
        received = []
        for i in range(6):
            await socket.send_json_to({"type": "message", "text": f"m{i}"})
            received.append(await socket.receive_json_from(timeout=5))
        # A minute window may turn over during the test, at most once: then one more passes.
        refused = [frame for frame in received if frame["type"] == "error"]
        assert len(refused) <= 1 and all(frame["code"] == "rate_limited" for frame in refused)
        if not refused:
            await socket.send_json_to({"type": "message", "text": "m6"})
            refused = [await socket.receive_json_from(timeout=5)]
        assert refused[0]["code"] == "rate_limited" and "retry in" in refused[0]["message"]
        await socket.disconnect()

    _run(scenario())


def test_chat__frame_over_64_kib__closed_with_1009(chat):
    async def scenario():
        socket, _, _ = await _join("lobby", "alice")
        await socket.send_to(text_data=json.dumps({"type": "message", "text": "x" * 70_000}))
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 1009}
        await socket.disconnect()  # as a client does: the consumer ends before the loop does

    _run(scenario())


# Live configuration and rotation -----------------------------------------------------------------


def test_chat__publish_changes_users_limits__new_config_frame_and_new_limit_live(chat, make_layer):
    make_layer("user:alice", {"chat.welcome_message": "hello alice"})

    async def scenario():
        socket, _, config = await _join("lobby", "alice")
        assert config["values"]["chat.max_message_length"] == 20
        await _publish("user:alice", {"chat.max_message_length": 40})
        update = await socket.receive_json_from(timeout=5)
        assert update["type"] == "config" and update["values"]["chat.max_message_length"] == 40
        await socket.send_json_to({"type": "message", "text": "x" * 30})
        assert (await socket.receive_json_from(timeout=5))["type"] == "message"
        await _publish("service:chat", {"unrelated.key": 1})  # no chat.* change: nothing sent
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()

    _run(scenario())


def test_chat__chat_disabled_while_connected__closed_with_4403(chat, make_layer):
    make_layer("user:alice", {"chat.welcome_message": "hello alice"})

    async def scenario():
        alice, _, _ = await _join("lobby", "alice")
        bob, _, _ = await _join("lobby", "bob")
        await _publish("user:alice", {"chat.enabled": False})
        await _closed_with(alice, 4403, "forbidden")
        assert await bob.receive_nothing(timeout=0.3)  # bob is not affected
        await bob.disconnect()

    _run(scenario())


def test_chat__rotation__new_key_first_drops_nobody_both_verify_then_old_key_removed(chat, old_key):
    new_key = secrets.token_urlsafe(32)

    async def scenario():
        connected, _, _ = await _join("lobby", "alice")
        old_ticket = await db_call(ticket_issue)(username="bob")  # signed with the old key

        await _publish("global", {KEY: [new_key, old_key]})
        assert await connected.receive_nothing(timeout=0.3)  # no close, no frame: nothing changed for her
        new_ticket = await db_call(ticket_issue)(username="zoë")
        assert jwt.get_unverified_header(new_ticket.token)["kid"] == key_id(new_key)
        for ticket in (old_ticket, new_ticket):
            socket = _socket("lobby", ticket.token)
            assert (await socket.connect())[0]
            assert (await socket.receive_json_from(timeout=5))["type"] == "history"
            await socket.disconnect()

        stale_ticket = _forge({"sub": "bob"}, old_key)
        await _publish("global", {KEY: [new_key]})
        socket = _socket("lobby", stale_ticket)
        await socket.connect()
        assert "no longer" in (await _closed_with(socket, 4401, "unauthorized"))["message"]

        await connected.send_json_to({"type": "message", "text": "still here"})
        assert (await connected.receive_json_from(timeout=5))["text"] == "still here"
        await connected.disconnect()

    _run(scenario())


def test_chat__normal_disconnect_and_late_delivery__log_no_error(chat, caplog):
    async def scenario():
        alice, _, _ = await _join("lobby", "alice")
        bob, _, _ = await _join("lobby", "bob")
        await bob.disconnect()
        await alice.send_json_to({"type": "message", "text": "bob has left"})
        assert (await alice.receive_json_from(timeout=5))["text"] == "bob has left"
        await alice.disconnect()

    with caplog.at_level("WARNING"):
        _run(scenario())
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []


def test_chat__unexpected_bug__logged_with_context_and_closed_with_1011(chat, caplog, monkeypatch):
    from chat import consumers

    def broken(**kwargs):
        raise RuntimeError("a bug in message storage")

    monkeypatch.setattr(consumers, "message_post", broken)

    async def scenario():
        socket, _, _ = await _join("lobby", "alice")
        await socket.send_json_to({"type": "message", "text": "boom"})
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 1011}
        await socket.disconnect()  # as a client does: the consumer ends before the loop does

    with caplog.at_level("ERROR"):
        _run(scenario())
    record = next(r for r in caplog.records if r.name == "chat.consumers")
    assert "user=alice" in record.getMessage() and "room='lobby'" in record.getMessage()
    assert "a bug in message storage" in record.exc_text or "a bug in message storage" in str(record.exc_info[1])


# Handshakes from memory ------------------------------------------------------------------------


@pytest.fixture
def database_hops(monkeypatch):
    """Counts the chat's reads that need a database thread during a handshake."""
    import chat.consumers
    import chat.sessions

    hops = {"session_read": 0, "room_history": 0}
    for module, name in ((chat.sessions, "session_read"), (chat.consumers, "room_history")):
        original = getattr(module, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            hops[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return hops


def test_chat__known_user_joins_a_room_with_members__no_database_read(chat, database_hops):
    async def scenario():
        alice, _, _ = await _join("lobby", "alice")
        await alice.send_json_to({"type": "message", "text": "before bob"})
        await alice.receive_json_from(timeout=5)
        first_bob, history, _ = await _join("lobby", "bob")
        assert database_hops == {"session_read": 2, "room_history": 0}
        assert [m["text"] for m in history["messages"]] == ["before bob"]
        await first_bob.disconnect()

        hops_before = dict(database_hops)
        again, history, config = await _join("lobby", "bob")  # keys, user, config and history in memory
        assert database_hops == hops_before
        assert [m["text"] for m in history["messages"]] == ["before bob"]
        assert config["values"]["chat.max_message_length"] == 20
        await alice.send_json_to({"type": "message", "text": "after bob"})
        assert (await again.receive_json_from(timeout=5))["text"] == "after bob"
        await alice.receive_json_from(timeout=5)

        third, history, _ = await _join("lobby", "bob")  # the message reached the remembered history
        assert [m["text"] for m in history["messages"]] == ["before bob", "after bob"]
        assert database_hops == hops_before
        for socket in (alice, again, third):
            await socket.disconnect()

    _run(scenario())


def test_chat__from_memory__ticket_still_single_use(chat, database_hops):
    async def scenario():
        alice, _, _ = await _join("lobby", "alice")
        bob, _, _ = await _join("lobby", "bob")
        await bob.disconnect()
        hops_before = dict(database_hops)
        ticket = await db_call(ticket_issue)(username="bob")
        first = _socket("lobby", ticket.token)
        assert (await first.connect())[0]
        await first.receive_json_from(timeout=5)
        await first.receive_json_from(timeout=5)
        assert database_hops == hops_before  # served from memory
        second = _socket("lobby", ticket.token)
        await second.connect()
        frame = await _closed_with(second, 4401, "unauthorized")
        assert "already used" in frame["message"]
        for socket in (alice, first):
            await socket.disconnect()

    _run(scenario())


def test_chat__user_deactivated__remembered_no_longer__4401(chat):
    from django.contrib.auth.models import User

    async def scenario():
        alice, _, _ = await _join("lobby", "alice")
        bob, _, _ = await _join("lobby", "bob")
        await bob.disconnect()

        def deactivate():
            user = User.objects.get(username="bob")
            user.is_active = False
            user.save()

        await db_call(deactivate)()
        ticket = await db_call(ticket_issue)(username="bob")  # issued by a service token, say
        socket = _socket("lobby", ticket.token)
        await socket.connect()
        frame = await _closed_with(socket, 4401, "unauthorized")
        assert "inactive" in frame["message"]
        await alice.disconnect()

    _run(scenario())


# One listener of the registry's moves per process ----------------------------------------------------------


def _listeners() -> int:
    from config_registry.state import broadcaster

    return broadcaster().listening()


def test_chat__many_connections__one_listener_of_registry_moves_until_the_last_leaves(chat):
    async def scenario():
        alice, _, _ = await _join("lobby", "alice")
        bob, _, _ = await _join("lobby", "bob")
        zoe, _, _ = await _join("garden", "zoë")
        assert _listeners() == 1  # not one per connection: following costs nothing after the first
        await _publish("global", {"chat.max_message_length": 30})
        for socket in (alice, bob, zoe):  # and the one membership reaches every connection
            assert (await socket.receive_json_from(timeout=5))["values"]["chat.max_message_length"] == 30
        for socket in (alice, bob):
            await socket.disconnect()
        assert _listeners() == 1
        await zoe.disconnect()
        assert _listeners() == 0  # the last one out stops listening

    _run(scenario())


def test_chat__publish_between_reading_config_and_joining__still_reaches_the_connection(chat, monkeypatch):
    from chat import consumers

    follow, sockets = consumers.FOLLOWERS.follow, {}

    async def publish_then_follow(member):
        if member.room == "garden":  # bob's configuration has been read
            await _publish("global", {"chat.max_message_length": 33})
            # Delivered to the members of this moment (alice), not to bob.
            assert (await sockets["alice"].receive_json_from(timeout=5))["values"]["chat.max_message_length"] == 33
        await follow(member)

    monkeypatch.setattr(consumers.FOLLOWERS, "follow", publish_then_follow)

    async def scenario():
        sockets["alice"], _, _ = await _join("lobby", "alice")  # keeps the process's relay running
        bob, _, config = await _join("garden", "bob")
        assert config["values"]["chat.max_message_length"] == 20  # as read before the publish
        update = await bob.receive_json_from(timeout=5)  # caught up once in
        assert (update["type"], update["values"]["chat.max_message_length"]) == ("config", 33)
        await bob.disconnect()
        await sockets["alice"].disconnect()

    _run(scenario())


def test_chat__message_to_the_room_while_joining__after_history_and_config_never_lost(chat, monkeypatch):
    from chat import consumers

    follow, sockets = consumers.FOLLOWERS.follow, {}

    async def message_then_follow(member):
        if member.room == "lobby" and "alice" in sockets:
            # bob is in the room's group, his first frames not yet sent: alice speaks, and gets it back
            # once the room has it, bob included.
            await sockets["alice"].send_json_to({"type": "message", "text": "while bob joins"})
            assert (await sockets["alice"].receive_json_from(timeout=5))["text"] == "while bob joins"
        await follow(member)

    monkeypatch.setattr(consumers.FOLLOWERS, "follow", message_then_follow)

    async def scenario():
        sockets["alice"], _, _ = await _join("lobby", "alice")
        bob, history, config = await _join("lobby", "bob")  # asserts nothing comes before these two
        assert (history["type"], config["type"]) == ("history", "config")
        assert (await bob.receive_json_from(timeout=5))["text"] == "while bob joins"
        await bob.disconnect()
        await sockets["alice"].disconnect()

    _run(scenario())


def test_chat__re_resolving_after_a_publish__messages_from_the_room_keep_arriving(chat, monkeypatch):
    """Configurations are re-resolved beside the relay: a slow re-resolve (thousands of users after a
    publish) does not hold up the room's messages arriving from other processes."""
    import threading

    from channels.layers import get_channel_layer

    from chat import consumers, fanout
    from config_registry.live.relay import group_message

    started, release = threading.Event(), threading.Event()
    resolve = fanout.chat_configs

    def slow(usernames):
        started.set()
        release.wait(timeout=30)
        return resolve(usernames)

    monkeypatch.setattr(fanout, "chat_configs", slow)

    async def scenario():
        bob, _, _ = await _join("lobby", "bob")
        await _publish("global", {"chat.max_message_length": 40})
        assert await asyncio.to_thread(started.wait, 30)  # bob's configuration is being re-resolved, slowly
        group = consumers.room_group("lobby")  # as another process's member posts to the room
        await get_channel_layer().group_send(
            group,
            group_message(
                group,
                {
                    "type": "chat.message",
                    "room": "lobby",
                    "id": 10**6,
                    "user": "alice",
                    "text": "meanwhile",
                    "at": "now",
                },
            ),
        )
        assert (await bob.receive_json_from(timeout=5))["text"] == "meanwhile"
        release.set()
        assert (await bob.receive_json_from(timeout=5))["values"]["chat.max_message_length"] == 40
        await bob.disconnect()

    try:
        _run(scenario())
    finally:
        release.set()


def test_chat__a_client_that_does_not_read__holds_up_nobody_and_misses_only_past_its_backlog(chat, monkeypatch, caplog):
    from chat import consumers, fanout

    monkeypatch.setattr(fanout, "MAX_BACKLOG", 2)
    send, reading = consumers.ChatConsumer.send, {}

    async def send_as_the_network_allows(self, text_data=None, **kwargs):
        if getattr(self.user, "username", None) == "bob" and '"message"' in (text_data or ""):
            await reading["bob"].wait()  # bob's socket takes nothing more (its buffers are full)
        await send(self, text_data=text_data, **kwargs)

    monkeypatch.setattr(consumers.ChatConsumer, "send", send_as_the_network_allows)

    async def scenario():
        reading["bob"] = asyncio.Event()
        alice, _, _ = await _join("lobby", "alice")
        bob, _, _ = await _join("lobby", "bob")
        zoe, _, _ = await _join("lobby", "zoë")
        for text in ("one", "two", "three", "four"):
            await alice.send_json_to({"type": "message", "text": text})
            for socket in (alice, zoe):  # not held up by bob
                assert (await socket.receive_json_from(timeout=5))["text"] == text
        reading["bob"].set()
        # "one" was on its way when bob stopped reading; "two" and "three" waited; "four" was one too many.
        assert [(await bob.receive_json_from(timeout=5))["text"] for _ in range(3)] == ["one", "two", "three"]
        assert await bob.receive_nothing(timeout=0.3)
        for socket in (alice, bob, zoe):
            await socket.disconnect()

    with caplog.at_level("WARNING"):
        _run(scenario())
    assert any("reads too slowly" in record.getMessage() for record in caplog.records)


def test_chat__handshakes_from_memory__build_no_cache_object_each(chat, monkeypatch):
    """Django builds its `cache` anew in every asynchronous context, that is, for every connection;
    a handshake from memory must not (it was a sixth of a handshake's CPU on Redis)."""
    from django.core.cache.backends.base import BaseCache

    built = []
    init = BaseCache.__init__
    monkeypatch.setattr(BaseCache, "__init__", lambda self, params: built.append(self) or init(self, params))

    async def scenario():
        first, _, _ = await _join("lobby", "alice")  # stays: the room's history is kept here
        for name in ("bob", "zoë", "bob"):  # first handshakes read the database; then from memory
            await (await _join("lobby", name))[0].disconnect()
        built.clear()
        sockets = [(await _join("lobby", name))[0] for name in ("bob", "zoë", "alice")]
        assert built == []
        for socket in [first, *sockets]:
            await socket.disconnect()

    _run(scenario())
