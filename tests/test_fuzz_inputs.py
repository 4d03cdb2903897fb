"""Fuzzing that keeps the classes of issue #11 closed: generated JSON values (deep, wide, lone
surrogates, NUL, huge numbers) through publish → resolve → history → audit → admin pages, and
generated chat frames through the consumer. Never a 500, never a 1011; what is accepted reads back."""

import asyncio
import json
from decimal import Decimal

import pytest
from channels.layers import channel_layers
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.tickets import ticket_issue
from config_registry.asyncdb import db_call
from config_registry.models import Layer
from project.asgi import application

FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


def _nested(depth: int, leaf: str = "0") -> str:
    return "[" * depth + leaf + "]" * depth


surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
texts = st.one_of(
    st.text(max_size=40),
    surrogates.map(lambda s: "a" + s + "b"),
    st.just("a\x00b"),
    st.text(st.characters(codec="utf-8"), max_size=10),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False, allow_infinity=False), texts
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=8) | st.dictionaries(texts, inner, max_size=8), max_leaves=40
)
# Raw JSON text of a value: what a client can send, including what Python's json cannot produce.
value_texts = st.one_of(
    values.map(json.dumps),  # surrogates travel as \ud800 escapes, as the review sent them
    st.integers(1, 3000).map(_nested),  # deep
    st.integers(1, 40).map(lambda depth: _nested(depth, '{"a": "x"}')),
    st.integers(4301, 6000).map(lambda digits: "9" * digits),  # past Python's int digits limit
    st.sampled_from(["1e400", "-1e400", '"\\u0000"', '"\\udfff"', '{"\\ud800": 1}', "[" * 5000]),
    st.lists(st.just('"' + "w" * 1000 + '"'), min_size=200, max_size=300).map(
        lambda items: "[" + ",".join(items) + "]"
    ),
)


@pytest.fixture
def published(transactional_db, make_layer, make_token, make_user, settings):
    settings.API_THROTTLE_RATE = "100000/min"
    make_user("alice")
    make_layer("global", {"seed.value": 1})
    return make_token("config:read", "config:write", "audit:read")


def test_fuzz__generated_values__publish_resolve_history_audit_admin_never_fail(published, client):
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {published}")
    client.force_login(User.objects.create_superuser("root", password="pw"))
    layer_pk = Layer.objects.get(level="global").pk

    @FUZZ
    @given(value=value_texts, secret=st.booleans())
    def round_trip(value, secret):
        base = Layer.objects.get(pk=layer_pk).current_version
        key = "fuzz.secret" if secret else "fuzz.plain"  # secret-ness sticks to a key
        secrets = f'["{key}"]' if secret else "[]"
        body = f'{{"base_version": {base}, "set": {{"{key}": {value}}}, "secrets": {secrets}}}'
        answer = api.generic("POST", "/api/v1/layers/global/versions", body, content_type="application/json")
        assert answer.status_code in (201, 400), (answer.status_code, answer.content[:300])
        if answer.status_code == 400 and "nothing to publish" in answer.content.decode():
            return  # the same value again
        assert answer.json()["message"] if answer.status_code == 400 else True
        now = Layer.objects.get(pk=layer_pk).current_version
        assert now == (base + 1 if answer.status_code == 201 else base)  # refused: nothing written
        resolved = api.get("/api/v1/resolve", {"environment": "development", "service": "chat"})
        assert resolved.status_code == 200
        if answer.status_code == 201 and not secret:
            # As JSON numbers (PostgreSQL's jsonb writes 1.5e+17 as 150000000000000000: the same number).
            exact = {"parse_float": Decimal, "parse_int": Decimal}
            assert json.loads(resolved.content, **exact)["values"]["fuzz.plain"] == json.loads(value, **exact)
        for path in (
            f"/api/v1/layers/global/versions/{now}",
            f"/api/v1/layers/global/diff?from={max(now - 1, 0)}&to={now}",
            "/api/v1/layers/global",
            "/api/v1/audit?page_size=5",
        ):
            assert api.get(path).status_code == 200, path
        for path in (
            f"layer/{layer_pk}/change/",
            f"layer/{layer_pk}/history/",
            f"layer/{layer_pk}/diff/",
            "auditevent/",
        ):
            assert client.get(f"/admin/config_registry/{path}").status_code == 200, path

    round_trip()


# Chat frames -----------------------------------------------------------------------------------

frames = st.one_of(
    texts.map(lambda text: json.dumps({"type": "message", "text": text})),
    values.map(json.dumps),
    st.text(max_size=200),
    st.integers(1, 30_000).map(_nested),
    st.sampled_from(
        [
            '{"type": "message", "text": "a\\ud800"}',
            '{"type": "message", "text": "a\\u0000b"}',
            '{"type": "message"}',
            '{"type": "message", "text": 1e400}',
            "{",
            "null",
            '"\\ud800"',
        ]
    ),
)


@pytest.fixture
def chat_room(transactional_db, make_layer, make_user):
    make_user("alice")
    make_layer(
        "global", {"chat.signing_keys": ["k" * 40], "chat.rate_limit_per_minute": 100000}, secrets=["chat.signing_keys"]
    )


def test_fuzz__generated_chat_frames__each_answered_never_closed(chat_room):
    @settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(frames.filter(bool), min_size=1, max_size=12))  # the test client sends no empty frame
    def conversation(batch):
        async def scenario():
            ticket = await db_call(ticket_issue)(username="alice")
            socket = WebsocketCommunicator(application, f"/ws/chat/fuzz/?ticket={ticket.token}")
            assert (await socket.connect())[0]
            await socket.receive_json_from(timeout=5)  # history
            await socket.receive_json_from(timeout=5)  # config
            for frame in batch:
                await socket.send_to(text_data=frame)
                output = await socket.receive_output(timeout=5)
                assert output["type"] == "websocket.send", (frame[:100], output)
                assert json.loads(output["text"])["type"] in ("message", "error")
            await socket.disconnect()

        channel_layers.backends.clear()  # each example runs on an event loop of its own: new layers for it (conftest)
        asyncio.run(scenario())

    conversation()
