"""Benchmark: many idle authenticated chat connections, and broadcast latency in a 100-member room,
each against a bare Channels consumer measured in the same run.

Run by hand, from the project root:

    .venv/bin/python bench/chat_idle.py [--connections 3000] [--broadcasts 50] [--processes 1]
                                        [--hold 0] [--ws wsproto] [--layer product|pubsub]

Prints the servers' memory per connection (resident set growth / connections) for the chat and for a
bare consumer that only joins a group, and the time for one message to reach all 100 members of a
room (p50, p99) for both. Uses SQLite and the in-memory layer by default; with REDIS_URL (and a
DATABASE_URL naming an empty database) it runs on channels_redis, and --processes 2 spreads the
connections (and the 100-member room) over two server processes. --hold N keeps every connection
idle for N seconds after the broadcasts, then checks that none was closed.
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat_soak import seed, setup_django, start_server  # noqa: E402

APPS = {"product": "bench.asgi", "pubsub": "bench.asgi_pubsub"}


def resident_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_many(urls: list[str], frames: int, concurrency: int = 50) -> list:
    import websockets

    semaphore, sockets = asyncio.Semaphore(concurrency), []

    async def one(url: str) -> None:
        async with semaphore:
            socket = await websockets.connect(url, open_timeout=120, compression=None, max_queue=None)
            for _ in range(frames):
                await asyncio.wait_for(socket.recv(), 120)
            sockets.append(socket)

    await asyncio.gather(*(one(url) for url in urls))
    return sockets


async def broadcast_latencies(sockets: list, message, is_reply, rounds: int) -> list[float]:
    """Send from the first socket; time until every socket has received it."""
    latencies = []
    for number in range(rounds):
        started = time.perf_counter()
        await sockets[0].send(message(number))

        async def until_received(socket) -> None:
            while not is_reply(await asyncio.wait_for(socket.recv(), 60), number):
                pass

        await asyncio.gather(*(until_received(socket) for socket in sockets))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def held_idle(sockets: list, seconds: int) -> dict[int, int]:
    """Keep the connections open and silent for `seconds`; closes seen meanwhile, by code."""
    if not seconds:
        return {}
    await asyncio.sleep(seconds)  # the point is the waiting itself: nothing to synchronize on
    closed: dict[int, int] = {}
    for socket in sockets:
        if socket.close_code is not None:
            closed[socket.close_code] = closed.get(socket.close_code, 0) + 1
    return closed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--broadcasts", type=int, default=50)
    parser.add_argument("--processes", type=int, default=1, help="server processes (more than 1 needs REDIS_URL)")
    parser.add_argument("--hold", type=int, default=0, help="seconds to hold the idle connections at the end")
    parser.add_argument("--ws", default="wsproto", help="uvicorn's WebSocket implementation (as make serve)")
    parser.add_argument(
        "--layer",
        choices=("product", "pubsub"),
        default="product",
        help="pubsub: channels_redis's RedisPubSubChannelLayer instead of the product's (needs REDIS_URL)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        env = setup_django(Path(workdir))
        seed(users=50)
        from chat.tickets import ticket_issue

        results = {}
        for kind in ("bare", "chat"):
            servers = [
                start_server(env, Path(workdir) / f"{kind}-{number}.log", args.ws, app=APPS[args.layer])
                for number in range(args.processes)
            ]
            try:
                # The first 100 (after the warm-up 20) share one room; the others idle in rooms of their own.
                # Connections go to the processes in turn, so the room spans all of them.
                rooms = ["warm"] * 20 + ["hundred"] * 100 + [f"idle{i}" for i in range(args.connections - 100)]
                addresses = [servers[i % len(servers)][1] for i in range(len(rooms))]
                if kind == "bare":
                    urls = [f"ws://{address}/ws/bare-room/{room}/" for address, room in zip(addresses, rooms)]
                    frames = 1
                else:
                    urls = [
                        f"ws://{address}/ws/chat/{room}/?ticket={ticket_issue(username=f'user{i % 50}').token}"
                        for i, (address, room) in enumerate(zip(addresses, rooms))
                    ]
                    frames = 2
                asyncio.run(open_many(urls[:20], frames))  # warm the processes up before measuring

                def resident() -> int:
                    return sum(resident_kb(process.pid) for process, _ in servers)

                before = resident()

                async def measure():
                    room = await open_many(urls[20:120], frames)
                    sockets = room + await open_many(urls[120:], frames)
                    grown = resident() - before
                    if kind == "bare":
                        latencies = await broadcast_latencies(
                            room, lambda n: f"m{n}", lambda frame, n: frame == f"m{n}", args.broadcasts
                        )
                    else:
                        latencies = await broadcast_latencies(
                            room,
                            lambda n: json.dumps({"type": "message", "text": f"m{n}"}),
                            lambda frame, n: json.loads(frame).get("text") == f"m{n}",
                            args.broadcasts,
                        )
                    closed = await held_idle(sockets, args.hold)
                    await asyncio.gather(*(socket.close() for socket in sockets))
                    return grown, len(sockets), latencies, closed

                grown, count, latencies, closed = asyncio.run(measure())
                results[kind] = (grown / count, statistics.median(latencies), percentile(latencies, 0.99), closed)
            finally:
                for process, _ in servers:
                    process.terminate()
                for process, _ in servers:
                    process.wait(timeout=60)
        layer = "redis" if env.get("REDIS_URL") else "in-memory"
        print(
            f"{args.connections} idle connections on {args.processes} uvicorn process(es) ({layer} layer, "
            f"--ws {args.ws}); {args.broadcasts} broadcasts to a 100-member room"
            + (f"; then held idle {args.hold} s" if args.hold else "")
        )
        for kind, (per_connection, p50, p99, closed) in results.items():
            print(
                f"  {kind:5} {per_connection:6.1f} KB per connection   broadcast p50 {p50:6.1f} ms   p99 {p99:6.1f} ms"
                + (f"   closed while idle: {closed}" if args.hold else "")
            )
        bare, chat = results["bare"], results["chat"]
        print(
            f"  chat / bare: memory {chat[0] / bare[0]:.2f}× (target ≤ 30 KB per connection), "
            f"broadcast p99 {chat[2] / bare[2]:.2f}× (target ≤ 1.5×)"
        )


if __name__ == "__main__":
    main()
