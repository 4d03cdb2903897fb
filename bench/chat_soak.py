"""Benchmark: chat soak under signing-key rotation, and the authenticated handshake rate.

Run by hand, from the project root:

    .venv/bin/python bench/chat_soak.py [--clients 200] [--seconds 60] [--rotate-every 10]
                                        [--handshakes 2000] [--rounds 5]

1. Handshake rate: --handshakes connections to a bare accept-only consumer and as many to the chat
   (ticket verified, history and config sent), --rounds times each, alternating, after a warm-up of
   both; prints every round and the median ratio.
2. Soak: --clients clients connect, chat and reconnect for --seconds while chat.signing_keys is
   rotated every --rotate-every seconds (new key first, the previous one kept); prints
   connections tried and succeeded, and closes by code.

Uses a fresh SQLite file by default; set DATABASE_URL (an existing, empty database) and REDIS_URL to
run on PostgreSQL and Redis.
"""

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KEY = "chat.signing_keys"


def setup_django(workdir: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'soak.sqlite3'}")
    os.environ.update(
        {
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "CONFIG_REGISTRY_KEYS": Fernet.generate_key().decode(),
            "API_THROTTLE_RATE": "100000000/min",
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return dict(os.environ)


def seed(users: int) -> str:
    from django.contrib.auth.models import User

    from config_registry.audit import Actor
    from config_registry.services import layer_create, token_create, version_publish

    actor = Actor("bench", may_write_security=True)
    User.objects.bulk_create([User(username=f"user{i}") for i in range(users)])
    layer = layer_create(ref="global", actor=actor)
    version_publish(
        layer=layer,
        base_version=0,
        secrets=[KEY],
        actor=actor,
        set_={KEY: [secrets.token_urlsafe(32)], "chat.rate_limit_per_minute": 100_000, "chat.max_message_length": 500},
    )
    return token_create(name="soak", scopes=["chat:ticket"], actor=Actor("bench", may_write_security=True))[1]


def rotate() -> None:
    """New key first, the previous one kept, older ones dropped."""
    from config_registry.audit import Actor
    from config_registry.models import Layer
    from config_registry.selectors import version_states
    from config_registry.services import version_publish

    layer = Layer.objects.get(level="global")
    keys = version_states(layer, layer.current_version)[KEY].value
    version_publish(
        layer=layer,
        base_version=layer.current_version,
        set_={KEY: [secrets.token_urlsafe(32), keys[0]]},
        secrets=[KEY],
        actor=Actor("bench:rotation", may_write_security=True),
        comment="soak rotation",
    )


def start_server(
    env: dict[str, str], log: Path, ws: str = "wsproto", cpus: set[int] | None = None, app: str = "bench.asgi"
) -> tuple[subprocess.Popen, str]:
    """uvicorn on a free port (on `cpus` only, if given)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                f"{app}:application",
                "--fd",
                str(sock.fileno()),
                "--lifespan",
                "off",
                "--log-level",
                "warning",
                "--no-access-log",
                "--ws-max-size",
                "65536",
                "--timeout-graceful-shutdown",
                "5",
                "--ws",
                ws,
            ],
            cwd=ROOT,
            env=env,
            pass_fds=[sock.fileno()],
            stdout=output,
            stderr=output,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    address = f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    return process, address


def fetch_ticket(address: str, token: str, user: str) -> str:
    request = urllib.request.Request(
        f"http://{address}/api/v1/chat/ticket",
        method="POST",
        data=json.dumps({"user": user}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["ticket"]


async def handshakes(urls: list[str], frames: int, concurrency: int) -> float:
    """Connections per second: connect, wait for `frames` frames, close."""
    import websockets

    semaphore = asyncio.Semaphore(concurrency)

    async def one(url: str) -> None:
        async with semaphore, websockets.connect(url, open_timeout=60, compression=None) as ws:
            for _ in range(frames):
                await asyncio.wait_for(ws.recv(), 60)

    started = time.perf_counter()
    await asyncio.gather(*(one(url) for url in urls))
    return len(urls) / (time.perf_counter() - started)


async def handshakes_with_a_member(address: str, urls: list[str]) -> float:
    """handshakes() to a room where someone already is (one member stays connected throughout),
    as people join rooms where people are."""
    import websockets
    from asgiref.sync import sync_to_async

    from chat.tickets import ticket_issue

    ticket = await sync_to_async(ticket_issue)(username="user0")
    async with websockets.connect(f"ws://{address}/ws/chat/lobby/?ticket={ticket.token}", compression=None) as member:
        for _ in range(2):
            await asyncio.wait_for(member.recv(), 60)
        return await handshakes(urls, 2, 20)


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def handshake_rounds(address: str, count: int, rounds: int, server_pid: int) -> list[tuple[float, ...]]:
    """(bare, chat) connections per second and the server's CPU time per connection for each,
    `rounds` times, alternating so that both see the same machine. Warmed up first, both of them:
    the chat by one connection of each user (the steady state of a server that has seen its users;
    the first connection of a user reads the database)."""
    from asgiref.sync import sync_to_async

    from chat.tickets import ticket_issue

    async def chat_urls(number: int) -> list[str]:
        tickets = [await sync_to_async(ticket_issue)(username=f"user{i % 50}") for i in range(number)]
        return [f"ws://{address}/ws/chat/lobby/?ticket={ticket.token}" for ticket in tickets]

    bare_urls = [f"ws://{address}/ws/bare/"] * count
    await handshakes(bare_urls[:100], 1, 20)
    await handshakes_with_a_member(address, await chat_urls(100))
    rates = []
    for _ in range(rounds):
        before = cpu_seconds(server_pid)
        bare = await handshakes(bare_urls, 1, 20)
        between, urls = cpu_seconds(server_pid), await chat_urls(count)
        between_urls = cpu_seconds(server_pid)
        chat = await handshakes_with_a_member(address, urls)
        after = cpu_seconds(server_pid)
        rates.append((bare, chat, (between - before) / count, (after - between_urls) / count))
    return rates


async def soak(address: str, token: str, clients: int, seconds: float, rotate_every: float) -> tuple[Counter, Counter]:
    import websockets
    from asgiref.sync import sync_to_async

    tried, closes = Counter(), Counter()
    deadline = time.monotonic() + seconds

    async def client(number: int) -> None:
        user = f"user{number % 50}"
        while time.monotonic() < deadline:
            tried["connections"] += 1
            try:
                ticket = await asyncio.to_thread(fetch_ticket, address, token, user)
                async with websockets.connect(
                    f"ws://{address}/ws/chat/room{number % 10}/?ticket={ticket}", open_timeout=60, compression=None
                ) as ws:
                    kinds = [json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] for _ in range(2)]
                    assert kinds == ["history", "config"], kinds
                    tried["succeeded"] += 1
                    for i in range(3):
                        await ws.send(json.dumps({"type": "message", "text": f"{user} says {i}"}))
                        await asyncio.sleep(0.05)
                    await ws.close()
                closes[1000] += 1
            except websockets.ConnectionClosed as closed:
                closes[closed.rcvd.code if closed.rcvd else 1006] += 1
            except Exception as error:  # a failed handshake or ticket: counted, never hidden
                closes[f"failed: {type(error).__name__}"] += 1

    async def rotations() -> None:
        while time.monotonic() + rotate_every < deadline:
            await asyncio.sleep(rotate_every)
            await sync_to_async(rotate, thread_sensitive=False)()
            tried["rotations"] += 1

    await asyncio.gather(rotations(), *(client(i) for i in range(clients)))
    return tried, closes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rotate-every", type=float, default=10)
    parser.add_argument("--handshakes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        env = setup_django(Path(workdir))
        token = seed(users=50)
        log = Path(workdir) / "server.log"
        # On two cores or more, the server and this load generator each get one of their own, so that
        # neither measurement depends on how the scheduler shares them.
        pinned = len(os.sched_getaffinity(0)) >= 2
        if pinned:
            server_cpu, client_cpu = sorted(os.sched_getaffinity(0))[:2]
            os.sched_setaffinity(0, {client_cpu})
        process, address = start_server(env, log, cpus={server_cpu} if pinned else None)
        try:
            print(
                f"database: {env['DATABASE_URL'].split('://')[0]}, layer: {'redis' if env.get('REDIS_URL') else 'in-memory'}; "
                f"uvicorn, 1 worker" + (f" on CPU {server_cpu}, load generator on CPU {client_cpu}" if pinned else "")
            )
            rates = asyncio.run(handshake_rounds(address, args.handshakes, args.rounds, process.pid))
            ratios = sorted(chat / bare for bare, chat, *_ in rates)
            print(f"\nhandshakes ({args.handshakes} a round, 20 at a time, {args.rounds} rounds of each, alternating):")
            for number, (bare, chat, bare_cpu, chat_cpu) in enumerate(rates, 1):
                print(
                    f"  round {number}: bare accept-only {bare:.0f}/s, authenticated chat {chat:.0f}/s, ratio {chat / bare:.2f}"
                    f"   server CPU per connection {bare_cpu * 1e6:.0f} → {chat_cpu * 1e6:.0f} µs"
                )
            print(
                f"  median ratio {statistics.median(ratios):.2f} (min {ratios[0]:.2f}, max {ratios[-1]:.2f}; target ≥ 0.80)"
            )
            cpu = statistics.median(chat_cpu / bare_cpu for *_, bare_cpu, chat_cpu in rates)
            print(f"  server CPU per connection, chat / bare: median {cpu:.2f}")

            tried, closes = asyncio.run(soak(address, token, args.clients, args.seconds, args.rotate_every))
            rate = tried["succeeded"] / max(tried["connections"], 1)
            print(f"\nsoak: {args.clients} clients for {args.seconds:.0f} s, {tried['rotations']} key rotations")
            print(
                f"  connections tried {tried['connections']}, succeeded {tried['succeeded']} ({rate:.2%}; target ≥ 99.9 %)"
            )
            print(
                "  closes by code: " + ", ".join(f"{code}: {count}" for code, count in sorted(closes.items(), key=str))
            )
            print(f"  1011 closes: {closes.get(1011, 0)} (target 0)")
        finally:
            process.terminate()
            process.wait(timeout=30)
        served = log.read_text().split("Shutting down")[0]  # the stop at the end is not the soak's
        errors = [line for line in served.splitlines() if "Traceback" in line or "ERROR" in line]
        if errors and os.environ.get("SOAK_SHOW_LOG"):
            print("\n".join(line for line in log.read_text().splitlines() if "INFO" not in line)[:6000])
        print(f"  server errors logged: {len(errors)}" + (f"; the first: {errors[0]}" if errors else ""))


if __name__ == "__main__":
    main()
