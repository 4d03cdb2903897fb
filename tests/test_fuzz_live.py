"""Chat and watch sockets fuzzed against a live server (uvicorn, real sockets, the websockets
client): generated frames, paths, rooms and tickets. No 1011, no HTTP 500 at the handshake, no
traceback or error in the log (issue #11)."""

import asyncio
import json
import logging
import random
from urllib.parse import quote

import pytest
import websockets

from chat.tickets import ticket_issue
from config_registry.audit import Actor
from config_registry.services import token_create

pytestmark = pytest.mark.django_db(transaction=True)


def _frames(rng: random.Random, count: int) -> list[str]:
    """A deterministic mix of the classes the review found: surrogates, NUL, depth, junk, width."""
    makers = [
        lambda: json.dumps(
            {
                "type": "message",
                "text": "".join(chr(rng.randrange(0x10FFFF)) for _ in range(5))
                .encode("utf-8", "surrogatepass")
                .decode("utf-8", "replace"),
            }
        ),
        lambda: '{"type": "message", "text": "a\\u' + f"{rng.randrange(0xD800, 0xE000):04x}" + '"}',
        lambda: '{"type": "message", "text": "x\\u0000y"}',
        lambda: "[" * rng.randrange(1, 40_000) + "]" * rng.randrange(0, 3),
        lambda: "".join(rng.choice('{}[]",:0123456789truefalsnul\\') for _ in range(rng.randrange(1, 300))),
        lambda: json.dumps({"type": rng.choice(["message", "join", "", None, 1]), "text": rng.random()}),
        lambda: json.dumps({"type": "message", "text": "w" * rng.randrange(1, 30_000)}),
        lambda: json.dumps({"type": "message", "text": "hello " + str(rng.random())}),
    ]
    return [rng.choice(makers)() for _ in range(count)]


@pytest.fixture
def live_chat(make_layer, make_user, asgi_server):
    make_user("alice")
    make_layer(
        "global",
        {"chat.signing_keys": ["k" * 40], "chat.rate_limit_per_minute": 100000, "chat.max_message_length": 10_000},
        secrets=["chat.signing_keys"],
    )
    return asgi_server


def test_fuzz_live__chat_frames__every_frame_answered_no_1011_no_error_logged(live_chat, caplog):
    rng = random.Random(11)
    batches = [_frames(rng, 60) for _ in range(5)]

    async def scenario():
        for batch in batches:
            ticket = await asyncio.to_thread(ticket_issue, username="alice")
            async with websockets.connect(
                f"ws://{live_chat}/ws/chat/fuzz/?ticket={ticket.token}", open_timeout=10, max_size=2**20
            ) as socket:
                await asyncio.wait_for(socket.recv(), 10)  # history
                await asyncio.wait_for(socket.recv(), 10)  # config
                for frame in batch:
                    await socket.send(frame)
                    answer = json.loads(await asyncio.wait_for(socket.recv(), 10))
                    assert answer["type"] in ("message", "error"), (frame[:80], answer)

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text[-2000:]


def test_fuzz_live__handshakes__refused_with_application_codes_never_500_or_1011(live_chat, caplog):
    rng = random.Random(7)
    _, token = token_create(name="fuzz", scopes=["config:read"], actor=Actor("admin:t", may_write_security=True))
    junk = lambda: quote("".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(1, 12))), safe="")  # noqa: E731
    attempts = []
    for _ in range(40):
        attempts += [
            (f"/ws/chat/{junk()}/?ticket={junk()}", {}),
            (f"/ws/chat/lobby/?ticket={rng.choice(['', 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.', junk()])}", {}),
            (f"/ws/{junk()}/{junk()}", {}),
            (f"/ws/config/?environment={junk()}&service=chat&user={junk()}", {"Authorization": f"Bearer {token}"}),
            (f"/ws/config/?environment=development&service=chat&user={junk()}", {"Authorization": f"Bearer {token}"}),
            ("/ws/config/?environment=development&service=chat", {"Authorization": f"Bearer {junk()}"}),
        ]

    async def scenario():
        codes = []
        for path, headers in attempts:
            try:
                async with websockets.connect(
                    f"ws://{live_chat}{path}", open_timeout=10, additional_headers=headers
                ) as socket:
                    while True:
                        await asyncio.wait_for(socket.recv(), 10)
            except websockets.ConnectionClosed as closed:
                codes.append(closed.rcvd.code if closed.rcvd else None)
            except websockets.InvalidStatus as refused:  # an HTTP answer instead of a WebSocket
                codes.append(refused.response.status_code)
        return codes

    with caplog.at_level(logging.INFO):
        codes = asyncio.run(scenario())
    assert set(codes) <= {4400, 4401, 4403, 4404}, sorted(set(codes))
    assert 1011 not in codes and 500 not in codes
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text[-2000:]
