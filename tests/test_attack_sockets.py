"""The adversarial review of issue #11 on the WebSockets: tokens and users that lose their right
while connected, frames that closed with 1011, unroutable paths, undecryptable signing keys."""

import asyncio
import json
import logging
import secrets
from datetime import timedelta

import jwt
import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from chat.tickets import ALGORITHM, key_id, ticket_issue
from config_registry.asyncdb import db_call
from config_registry.audit import Actor
from config_registry.models import Entry, ServiceToken
from config_registry.services import token_create, token_revoke
from project.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
ACTOR = Actor("admin:tester", may_write_security=True)
KEY = "chat.signing_keys"
SIGNING_KEY = secrets.token_urlsafe(32)


@pytest.fixture
def chat(make_layer, make_user):
    for name in ("alice", "bob"):
        make_user(name)
    make_layer("global", {KEY: [SIGNING_KEY], "db.password": "s3cret-pw"}, secrets=[KEY, "db.password"])
    make_layer("service:chat", {"chat.enabled": True})


def _watch(raw: str, query: str = "environment=development&service=chat") -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application, f"/ws/config/?{query}", headers=[(b"authorization", f"Bearer {raw}".encode())]
    )


async def _closed_with(socket: WebsocketCommunicator, code: int, error: str | None = None) -> dict | None:
    frame = None
    if error:
        frame = await socket.receive_json_from(timeout=5)
        while frame["type"] != "error":  # config frames may come before the refusal
            frame = await socket.receive_json_from(timeout=5)
        assert frame["code"] == error, frame
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": code}
    await socket.disconnect()
    return frame


async def _join(room: str, username: str) -> WebsocketCommunicator:
    ticket = await db_call(ticket_issue)(username=username)
    socket = WebsocketCommunicator(application, f"/ws/chat/{room}/?ticket={ticket.token}")
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=5))["type"] == "history"
    assert (await socket.receive_json_from(timeout=5))["type"] == "config"
    return socket


# 1. Tokens re-checked on the watch ------------------------------------------------------------


def test_watch__token_revoked_while_connected__error_frame_then_4401_and_no_more_secrets(chat):
    token, raw = token_create(name="watcher", scopes=["config:read", "secrets:read"], actor=ACTOR)

    async def scenario():
        socket = _watch(raw)
        assert (await socket.connect())[0]
        first = await socket.receive_json_from(timeout=5)
        assert first["values"]["db.password"] == "s3cret-pw"
        await db_call(token_revoke)(token=token, actor=ACTOR)
        frame = await _closed_with(socket, 4401, "unauthorized")
        assert "revoked" in frame["message"]

    asyncio.run(scenario())


def test_watch__token_expires_while_connected__4401(chat):
    _, raw = token_create(
        name="short", scopes=["config:read"], actor=ACTOR, expires_at=timezone.now() + timedelta(seconds=1)
    )

    async def scenario():
        socket = _watch(raw)
        assert (await socket.connect())[0]
        await socket.receive_json_from(timeout=5)
        frame = await socket.receive_json_from(timeout=10)  # the expiry arrives: no publish needed
        assert frame["code"] == "unauthorized" and "expired" in frame["message"]
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
        await socket.disconnect()

    asyncio.run(scenario())


def test_watch__token_loses_its_scope__4401(chat):
    token, raw = token_create(name="narrowed", scopes=["config:read", "secrets:read"], actor=ACTOR)

    async def scenario():
        socket = _watch(raw)
        assert (await socket.connect())[0]
        await socket.receive_json_from(timeout=5)

        def narrow():
            token.scopes = ["audit:read"]
            token.save()

        await db_call(narrow)()
        await _closed_with(socket, 4401, "unauthorized")

    asyncio.run(scenario())


def test_watch__secrets_read__signing_keys_stay_masked(chat):
    _, raw = token_create(name="watcher", scopes=["config:read", "secrets:read"], actor=ACTOR)

    async def scenario():
        socket = _watch(raw)
        assert (await socket.connect())[0]
        frame = await socket.receive_json_from(timeout=5)
        assert frame["values"][KEY] == "********" and SIGNING_KEY not in json.dumps(frame)
        await socket.disconnect()

    asyncio.run(scenario())


# 5. and 8. Chat input that closed with 1011 ---------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "message", "text": "a\\ud800"}',
        '{"type": "message", "text": "a\\u0000b"}',
        "[" * 20_000 + "]" * 20_000,
        '{"type": "message", "text": "' + "\\ud83d" * 10 + '"}',
    ],
)
def test_chat__frames_that_cannot_be_parsed_or_stored__bad_request_and_the_connection_stays(chat, frame):
    async def scenario():
        socket = await _join("lobby", "alice")
        await socket.send_to(text_data=frame)
        error = await socket.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", "bad_request"), error
        await socket.send_json_to({"type": "message", "text": "still here"})
        message = await socket.receive_json_from(timeout=5)
        assert (message["type"], message["text"]) == ("message", "still here")
        await socket.disconnect()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "claims", [{"exp": "99999999999"}, {"exp": None}, {"jti": ["x"]}, {"sub": 42}, {"sub": "alice\x00"}]
)
def test_chat__ticket_with_claims_of_the_wrong_type__4401(chat, claims):
    now = int(timezone.now().timestamp())
    payload = {"sub": "alice", "aud": "chat", "exp": now + 60, "jti": secrets.token_hex(8), **claims}
    ticket = jwt.encode(payload, SIGNING_KEY, algorithm=ALGORITHM, headers={"kid": key_id(SIGNING_KEY)})

    async def scenario():
        socket = WebsocketCommunicator(application, f"/ws/chat/lobby/?ticket={ticket}")
        assert (await socket.connect())[0]
        await _closed_with(socket, 4401, "unauthorized")

    asyncio.run(scenario())


def test_chat__ticket_header_with_an_unhashable_kid__4401(chat):
    import base64
    import hashlib
    import hmac

    def part(data) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signed = part({"alg": "HS256", "typ": "JWT", "kid": ["a"]}) + "." + part({"sub": "alice"})
    signature = hmac.new(SIGNING_KEY.encode(), signed.encode(), hashlib.sha256).digest()
    ticket = signed + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()

    async def scenario():
        socket = WebsocketCommunicator(application, f"/ws/chat/lobby/?ticket={ticket}")
        assert (await socket.connect())[0]
        await _closed_with(socket, 4401, "unauthorized")

    asyncio.run(scenario())


def test_watch__nul_in_the_user__4400(chat, make_token):
    raw = make_token("config:read")

    async def scenario():
        socket = _watch(raw, "environment=development&service=chat&user=a%00b")
        assert (await socket.connect())[0]
        await _closed_with(socket, 4400, "bad_request")

    asyncio.run(scenario())


# 7. Unroutable WebSocket paths ----------------------------------------------------------------


def test_websocket__unroutable_paths__refused_4404_without_a_traceback(chat, asgi_server, caplog):
    import websockets

    async def scenario():
        for path in ("/ws/chat/a%2Fb/", "/ws/nothing/", "/elsewhere"):
            async with websockets.connect(f"ws://{asgi_server}{path}", open_timeout=10) as socket:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await _read_until_closed(socket)
                assert closed.value.rcvd.code == 4404, path

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert "Traceback" not in caplog.text and "No route found" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


async def _read_until_closed(socket) -> None:
    while True:
        await asyncio.wait_for(socket.recv(), 5)


# 10. Undecryptable signing keys ---------------------------------------------------------------


@pytest.fixture
def broken_keys(chat):
    entry = Entry.objects.get(version__layer__level="global", key=KEY)
    damaged = entry.ciphertext[:-6] + ("A" if entry.ciphertext[-6] != "A" else "B") + entry.ciphertext[-5:]
    Entry.objects.rewrap(entry_id=entry.pk, ciphertext=damaged)


def test_chat__signing_keys_undecryptable__1013_naming_the_key_logged_once(broken_keys, caplog):
    async def scenario():
        for _ in range(3):
            socket = WebsocketCommunicator(application, "/ws/chat/lobby/?ticket=abc")
            assert (await socket.connect())[0]
            frame = await _closed_with(socket, 1013, "unavailable")
            assert KEY in frame["message"]

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert len([r for r in caplog.records if KEY in r.getMessage() and "decrypt" in r.getMessage()]) == 1


def test_ticket_api__signing_keys_undecryptable__503_naming_the_key(broken_keys, client):
    client.login(username="alice", password="pw-alice")
    response = client.post("/api/v1/chat/ticket", {}, content_type="application/json")
    assert response.status_code == 503
    assert KEY in response.json()["message"]


# 11. A deactivated user stays connected -------------------------------------------------------


def test_chat__user_deactivated_while_connected__closed_4401_live(chat):
    async def scenario():
        bob = await _join("lobby", "bob")
        alice = await _join("lobby", "alice")

        def deactivate():
            user = User.objects.get(username="bob")
            user.is_active = False
            user.save()

        await db_call(deactivate)()
        await _closed_with(bob, 4401, "unauthorized")
        await alice.send_json_to({"type": "message", "text": "alice stays"})
        assert (await alice.receive_json_from(timeout=5))["text"] == "alice stays"
        await alice.disconnect()

    asyncio.run(scenario())


# 1. On every process: revocation through one process closes the watch held by another --------


def test_watch__token_revoked__closed_on_another_process(chat, server_processes, postgres_only):
    import websockets

    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://… (the shared channel layer)")
    token, raw = token_create(name="watcher", scopes=["config:read"], actor=ACTOR)
    address, _ = server_processes()

    async def scenario():
        async with websockets.connect(
            f"ws://{address}/ws/config/?environment=development&service=chat",
            additional_headers={"Authorization": f"Bearer {raw}"},
            open_timeout=60,
        ) as watch:
            assert json.loads(await asyncio.wait_for(watch.recv(), 30))["type"] == "config"
            await asyncio.to_thread(token_revoke, token=ServiceToken.objects.get(pk=token.pk), actor=ACTOR)
            frame = json.loads(await asyncio.wait_for(watch.recv(), 30))
            assert frame["code"] == "unauthorized"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(watch.recv(), 30)
            assert closed.value.rcvd.code == 4401

    asyncio.run(scenario())
