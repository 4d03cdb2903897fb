"""Redis stops and comes back, under a real server: readiness says so, the API keeps answering from
the database, new chat connections are refused with 1013, and everything recovers without a restart.

The test runs its own redis-server on a free port, so that stopping it touches nothing else."""

import asyncio
import json
import secrets
import shutil
import socket
import subprocess

import pytest
import websockets

from chat.tickets import ticket_issue
from tests.http import chat_outcome, get_json

pytestmark = pytest.mark.django_db(transaction=True)


class PrivateRedis:
    def __init__(self, tmp_path):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.dir, self.process = tmp_path, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for line in self.process.stdout:  # its own word that it is ready, not a guess
            if "Ready to accept connections" in line:
                return
        raise RuntimeError("redis-server exited before accepting connections")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture
def private_redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server (Debian package redis-server)")
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    if redis.process.poll() is None:
        redis.stop()


def test_redis_stops_and_returns__degrades_without_1011_and_recovers(
    private_redis, server_processes, make_layer, make_user, make_token
):
    make_user("alice")
    make_layer(
        "global",
        {"chat.signing_keys": [secrets.token_urlsafe(32)], "feature.flag": True},
        secrets=["chat.signing_keys"],
    )
    token = make_token("config:read")
    address, log = server_processes(redis_url=private_redis.url)
    resolve = f"http://{address}/api/v1/resolve?environment=prod&service=chat"

    assert get_json(f"http://{address}/readyz") == (200, {"status": "ready"})
    assert asyncio.run(chat_outcome(address, ticket_issue(username="alice").token)) == ("history", None)

    private_redis.stop()
    status, body = get_json(f"http://{address}/readyz")
    assert status == 503 and "channel_layer" in body["problems"] and "database" not in body["problems"]
    status, body = get_json(resolve, token)
    assert status == 200 and body["values"]["feature.flag"] is True  # answered from the database
    assert asyncio.run(chat_outcome(address, ticket_issue(username="alice").token)) == ("error", 1013)

    private_redis.start()  # the same port: the server reconnects on its own
    assert get_json(f"http://{address}/readyz") == (200, {"status": "ready"})
    assert asyncio.run(chat_outcome(address, ticket_issue(username="alice").token)) == ("history", None)
    assert get_json(resolve, token)[0] == 200
    assert "Exception in ASGI application" not in log.read_text()


def test_redis_slow__messages_arrive_late_never_1011(private_redis, server_processes, make_layer, make_user):
    """Several seconds of latency between the server and Redis: slow, not broken."""
    from tests.tcp_proxy import TcpProxy

    for name in ("alice", "bob"):
        make_user(name)
    make_layer(
        "global",
        {"chat.signing_keys": [secrets.token_urlsafe(32)], "chat.rate_limit_per_minute": 100},
        secrets=["chat.signing_keys"],
    )
    proxy = TcpProxy("127.0.0.1", private_redis.port).start()
    try:
        address, log = server_processes(redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        urls = [f"ws://{address}/ws/chat/slow/?ticket={ticket_issue(username=name).token}" for name in ("alice", "bob")]

        async def scenario():
            alice, bob = [await websockets.connect(url, open_timeout=60) for url in urls]
            for socket_ in (alice, bob):
                assert [json.loads(await asyncio.wait_for(socket_.recv(), 60))["type"] for _ in range(2)] == [
                    "history",
                    "config",
                ]
            proxy.delay = 2.0  # every chunk to and from Redis now waits 2 s
            loop = asyncio.get_running_loop()
            sent = loop.time()
            await alice.send(json.dumps({"type": "message", "text": "slowly"}))
            received = json.loads(await asyncio.wait_for(bob.recv(), 120))
            assert received["text"] == "slowly" and loop.time() - sent >= 2
            proxy.delay = 0.0
            await alice.send(json.dumps({"type": "message", "text": "quick again"}))
            while json.loads(await asyncio.wait_for(bob.recv(), 60))["text"] != "quick again":
                pass
            await alice.close()
            await bob.close()

        asyncio.run(scenario())
    finally:
        proxy.stop()
    assert "Exception in ASGI application" not in log.read_text()


def test_redis_restarts_empty__processes_rejoin_their_rooms_and_catch_up(
    private_redis, server_processes, make_layer, make_user
):
    """Redis keeps nothing on disk: a restart forgets which processes are in which room. Each process
    joins its groups again (here every second), so a room shared by two processes works again, and
    a publish made meanwhile still reaches the connections of the process that was out."""
    from config_registry.asyncdb import db_call
    from config_registry.audit import Actor
    from config_registry.models import Layer
    from config_registry.services import version_publish

    for name in ("alice", "bob"):
        make_user(name)
    make_layer(
        "global",
        {
            "chat.signing_keys": [secrets.token_urlsafe(32)],
            "chat.rate_limit_per_minute": 100,
            "chat.max_message_length": 100,
        },
        secrets=["chat.signing_keys"],
    )
    refresh = {"CHANNEL_GROUP_REFRESH_SECONDS": "1"}
    (first, first_log), (second, second_log) = [
        server_processes(redis_url=private_redis.url, environment=refresh) for _ in range(2)
    ]
    urls = [
        f"ws://{address}/ws/chat/lobby/?ticket={ticket_issue(username=name).token}"
        for address, name in ((first, "alice"), (second, "bob"))
    ]

    def publish():
        layer = Layer.objects.get(level="global")
        version_publish(
            layer=layer,
            base_version=layer.current_version,
            set_={"chat.max_message_length": 200},
            actor=Actor("admin:tester", may_write_security=True),
        )

    async def frame_of(socket_, kind: str, timeout: float) -> dict:
        while True:
            frame = json.loads(await asyncio.wait_for(socket_.recv(), timeout))
            if frame["type"] == kind:
                return frame

    async def scenario():
        alice, bob = [await websockets.connect(url, open_timeout=60) for url in urls]
        for socket_ in (alice, bob):
            await frame_of(socket_, "config", 60)
        await alice.send(json.dumps({"type": "message", "text": "before"}))
        assert (await frame_of(bob, "message", 60))["text"] == "before"

        private_redis.stop()
        private_redis.start()  # empty: no process is in any group
        await db_call(publish)()
        config = await frame_of(bob, "config", 60)  # announced, or caught up on once back in the group
        assert config["values"]["chat.max_message_length"] == 200

        for attempt in range(30):  # a message sent before a process is back in the room is not relayed
            await alice.send(json.dumps({"type": "message", "text": f"after {attempt}"}))
            try:
                received = await frame_of(bob, "message", 2)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("bob's process never rejoined the room")
        assert received["text"].startswith("after")
        await alice.close()
        await bob.close()

    asyncio.run(scenario())
    for log in (first_log, second_log):
        assert "Exception in ASGI application" not in log.read_text()
    assert "joined it again" in second_log.read_text()
