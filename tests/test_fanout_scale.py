"""Live fan-out at scale (SPEC §7): after a publish, a process brings every connected user up to date
with one read of the shared part and one batched read of their overlays, whatever their number; users
whose values did not change get no frame; those who lost access are closed with 4403 in the same pass."""

import asyncio
import secrets

import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.selectors import chat_configs
from chat.tickets import ticket_issue
from config_registry.asyncdb import db_call
from config_registry.memory import memos_clear
from config_registry.selectors.resolution import SHARED_PARTS
from project.asgi import application
from tests.publishing import publish_next

KEY = "chat.signing_keys"


@pytest.fixture
def registry(make_layer):
    for name in ("crew", "band"):
        Group.objects.create(name=name)
    make_layer("global", {KEY: [secrets.token_urlsafe(32)], "chat.max_message_length": 20}, secrets=[KEY])
    make_layer("service:chat", {"chat.enabled": True, "chat.allowed_rooms": ["lobby"], "other.key": 1})


def _people(count: int, make_layer, start: int = 0) -> set[str]:
    """`count` users, every third with a layer of their own, all in group `crew` or `band`."""
    crew, band = (Group.objects.get(name=name) for name in ("crew", "band"))
    names = set()
    for i in range(start, start + count):
        user = User.objects.create(username=f"user{i:04}")
        user.groups.add(crew if i % 2 else band)
        names.add(user.username)
        if i % 3 == 0:
            make_layer(f"user:{user.username}", {"chat.max_message_length": 100 + i})
    return names


def _queries(usernames: set[str]) -> tuple[int, int]:
    """(all queries, reads of the shared part's layers) of one fan-out's resolution."""
    memos_clear()
    with CaptureQueriesContext(connection) as captured:
        configs = chat_configs(usernames)
    assert all(configs[name] is not None for name in usernames)
    shared_reads = sum(1 for query in captured.captured_queries if "\"level\" = 'service'" in query["sql"])
    return len(captured.captured_queries), shared_reads


@pytest.mark.django_db
def test_fanout_resolution__ten_or_three_hundred_users__the_same_queries(registry, make_layer):
    make_layer("group:crew", {"chat.max_message_length": 30}, priority=1)
    make_layer("group:band", {"chat.enabled": True}, priority=2)
    few = _people(10, make_layer)
    many = few | _people(290, make_layer, start=10)
    assert _queries(few) == _queries(many)
    assert _queries(many)[1] == 1  # the shared part: read once for all of them
    configs = chat_configs(many)
    assert configs["user0003"]["chat.max_message_length"] == 103  # own layer over the group's
    assert configs["user0001"]["chat.max_message_length"] == 30  # crew's over the service's
    assert configs["user0006"]["chat.max_message_length"] == 106
    assert configs["user0004"]["chat.max_message_length"] == 20  # band sets no limit: global's
    assert len(SHARED_PARTS) == 1


@pytest.mark.django_db
def test_fanout_resolution__equals_each_users_own_resolution(registry, make_layer):
    from chat.selectors import chat_config
    from config_registry.selectors import registry_position

    make_layer("group:crew", {"chat.max_message_length": 30, "chat.welcome": "crew"}, priority=5)
    make_layer("group:band", {"chat.max_message_length": 40}, priority=1)
    names = _people(12, make_layer)
    User.objects.get(username="user0005").groups.add(Group.objects.get(name="band"))  # in both: crew wins
    batched = chat_configs(names)
    memos_clear()
    position = registry_position()
    assert batched == {name: chat_config(name, position) for name in names}
    assert batched["user0005"]["chat.max_message_length"] == 30


@pytest.mark.django_db
def test_fanout_resolution__inactive_or_deleted_users__none(registry, make_layer):
    names = _people(4, make_layer)
    User.objects.filter(username="user0001").update(is_active=False)
    User.objects.filter(username="user0002").delete()
    configs = chat_configs(names)
    assert configs["user0001"] is None and configs["user0002"] is None
    assert configs["user0000"] is not None


async def _join(username: str) -> WebsocketCommunicator:
    ticket = await db_call(ticket_issue)(username=username)
    socket = WebsocketCommunicator(application, f"/ws/chat/lobby/?ticket={ticket.token}")
    connected, _ = await socket.connect()
    assert connected
    for expected in ("history", "config"):
        assert (await socket.receive_json_from(timeout=10))["type"] == expected
    return socket


@pytest.mark.django_db(transaction=True)
def test_fanout__hundreds_connected__one_loses_the_room_closed_4403_others_a_frame_or_nothing(registry, make_layer):
    names = sorted(_people(200, make_layer))
    banned = "user0007"
    make_layer(f"user:{banned}", {"chat.welcome": "hello"})
    make_layer("group:crew", {"chat.welcome": "crew"}, priority=3)

    async def scenario():
        sockets = {name: await _join(name) for name in names}
        # One publish: the banned user's own layer loses the room; the crew's limit changes.
        await publish_next(f"user:{banned}", {"chat.allowed_rooms": ["garden"]})
        frame = await sockets[banned].receive_json_from(timeout=30)
        assert (frame["type"], frame["code"]) == ("error", "forbidden")
        assert (await sockets[banned].receive_output(timeout=10))["code"] == 4403
        for name in names:
            if name != banned:
                assert await sockets[name].receive_nothing(timeout=0.01)  # nothing of theirs changed
        await publish_next("group:crew", {"chat.max_message_length": 55})
        for name in names:
            if name == banned:
                continue
            number = int(name[4:])
            if number % 2 and number % 3:  # crew, without a layer of their own that sets a limit
                frame = await sockets[name].receive_json_from(timeout=30)
                assert frame["type"] == "config" and frame["values"]["chat.max_message_length"] == 55
            else:
                assert await sockets[name].receive_nothing(timeout=0.01)
        for socket in sockets.values():
            await socket.disconnect()

    asyncio.run(scenario())
