"""Part 3 of bench/scale.py: a publish's fan-out to thousands of connected chat users, against a
room message to the same connections, in the same run, on one uvicorn process."""

import asyncio
import json
import secrets
import statistics
import time
import urllib.request
from pathlib import Path

from bench.chat_soak import cpu_seconds, start_server

ROOM = "lobby"


def _seed(users: int, start: int) -> list[str]:
    """`users` distinct users (user layers of their own, so that every configuration differs), in
    four groups with layers; the first call also writes global and service:chat."""
    from django.contrib.auth.models import Group, User

    from config_registry.audit import Actor
    from config_registry.models import Layer, Level
    from config_registry.services import layer_create, version_publish

    actor = Actor("bench", may_write_security=True)
    if not Layer.objects.filter(level=Level.GLOBAL).exists():
        version_publish(
            layer=layer_create(ref="global", actor=actor),
            base_version=0,
            secrets=["chat.signing_keys"],
            set_={"chat.signing_keys": [secrets.token_urlsafe(32)], "chat.rate_limit_per_minute": 100_000},
            actor=actor,
        )
        version_publish(
            layer=layer_create(ref="service:chat", actor=actor),
            base_version=0,
            set_={"chat.enabled": True, "chat.welcome": "v0", **{f"chat.option{i}": i for i in range(50)}},
            actor=actor,
        )
        for number in range(4):
            Group.objects.create(name=f"team{number}")
            version_publish(
                layer=layer_create(ref=f"group:team{number}", priority=number, actor=actor),
                base_version=0,
                set_={"chat.team": number, "chat.max_message_length": 200 + number},
                actor=actor,
            )
    groups = list(Group.objects.filter(name__startswith="team").order_by("name"))
    names = [f"fan{i:05}" for i in range(start, start + users)]
    User.objects.bulk_create([User(username=name) for name in names])
    users = list(User.objects.filter(username__in=names).order_by("username"))
    for number, group in enumerate(groups):
        group.user_set.add(*users[number::4])  # through the ORM: memberships are recorded by revision
    for i, name in enumerate(names):
        version_publish(
            layer=layer_create(ref=f"user:{name}", actor=actor),
            base_version=0,
            set_={"chat.max_message_length": 1000 + start + i},
            actor=actor,
        )
    return names


def _current_version(address: str, token: str) -> int:
    url = f"http://{address}/api/v1/layers/service:chat"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["current_version"]


def _publish_welcome(address: str, token: str, base: int, text: str) -> None:
    """Through the server's API, as an admin's tool would (embedded, only the process that commits
    hears of it at once: the in-process broadcaster)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"base_version": base, "set": {"chat.welcome": text}}).encode()
    url = f"http://{address}/api/v1/layers/service:chat/versions"
    with urllib.request.urlopen(
        urllib.request.Request(url, data=body, headers=headers, method="POST"), timeout=60
    ) as response:
        assert response.status == 201


async def _open(address: str, names: list[str], concurrency: int = 50) -> list:
    """One chat connection per user, each with a ticket issued just before it connects (a ticket
    lives 60 s: thousands issued up front would expire while the first ones connect)."""
    import websockets
    from asgiref.sync import sync_to_async

    from chat.tickets import ticket_issue

    semaphore, sockets = asyncio.Semaphore(concurrency), []
    issue = sync_to_async(ticket_issue)  # one thread, one database connection, for every task

    async def one(name: str) -> None:
        async with semaphore:
            url = f"ws://{address}/ws/chat/{ROOM}/?ticket={(await issue(username=name)).token}"
            socket = await websockets.connect(url, open_timeout=120, compression=None, max_queue=None)
            for _ in range(2):  # history, config
                await asyncio.wait_for(socket.recv(), 120)
            sockets.append(socket)

    await asyncio.gather(*(one(name) for name in names))
    return sockets


async def _until_all(sockets: list, wanted) -> float:
    """Seconds until every socket has received a frame for which wanted(frame) holds."""
    started = time.perf_counter()

    async def one(socket) -> None:
        while not wanted(json.loads(await asyncio.wait_for(socket.recv(), 300))):
            pass

    await asyncio.gather(*(one(socket) for socket in sockets))
    return time.perf_counter() - started


async def _round(sockets: list, number: int, pid: int, address: str, token: str) -> tuple[float, float, float]:
    """(message seconds, publish seconds, server CPU seconds of the publish). The publish is timed
    from its request (the version it is based on read before)."""
    text = f"round {number}"
    waiting = asyncio.ensure_future(
        _until_all(sockets, lambda frame: frame.get("type") == "message" and frame.get("text") == text)
    )
    await sockets[0].send(json.dumps({"type": "message", "text": text}))
    message = await waiting
    welcome = f"welcome {number}"
    loop = asyncio.get_running_loop()
    base = await loop.run_in_executor(None, _current_version, address, token)
    cpu = cpu_seconds(pid)
    waiting = asyncio.ensure_future(
        _until_all(sockets, lambda frame: frame.get("type") == "config" and frame["values"]["chat.welcome"] == welcome)
    )
    await loop.run_in_executor(None, _publish_welcome, address, token, base, welcome)
    publish = await waiting
    return message, publish, cpu_seconds(pid) - cpu


def bench_fanout(env: dict[str, str], workdir: Path, counts: list[int], rounds: int = 3) -> None:
    from config_registry.audit import Actor
    from config_registry.services import token_create

    token = token_create(name="fanout", scopes=["config:write", "config:read"], actor=Actor("bench"))[1]
    print("\n3. fan-out to distinct connected chat users, one uvicorn process")
    seeded: list[str] = []
    for count in counts:
        if len(seeded) < count:
            seeded += _seed(count - len(seeded), len(seeded))
        process, address = start_server(env, workdir / f"fanout-{count}.log")
        try:

            async def measure():
                sockets = await _open(address, seeded[:count])
                results = [await _round(sockets, number, process.pid, address, token) for number in range(rounds)]
                await asyncio.gather(*(socket.close() for socket in sockets))
                return results

            results = asyncio.run(measure())
        finally:
            process.terminate()
            process.wait(timeout=30)
        message = statistics.median(r[0] for r in results)
        publish = statistics.median(r[1] for r in results)
        cpu = statistics.median(r[2] for r in results)
        ratios = ", ".join(f"{r[1] / r[0]:.2f}" for r in results)
        print(
            f"  {count:5} users: message to all {message * 1000:7.0f} ms, new config to all {publish * 1000:7.0f} ms "
            f"= {publish / message:.2f}× the message (rounds {ratios}; target ≤ 3×); server CPU per publish {cpu:.2f} s"
        )
