"""Benchmark of the Python client (clients/python, SPEC §10), against a real uvicorn:

1. `Registry.get()` served from memory against a plain dict lookup of the same key, in the same run
   (ratio = dict time / get time; the client takes a lock and checks the key, the dict does neither);
2. the requests a watching client makes while nothing changes: HTTP requests and configuration frames
   per minute (target: 0; the socket's own keepalive pings, every 20 s by websockets' default, aside).

Run by hand, from the project root (same database rules as bench/api_resolve.py):

    .venv/bin/python bench/client.py [--calls 1000000] [--idle-seconds 60]
"""

import argparse
import statistics
import sys
import tempfile
import threading
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_resolve import prepare_environment, seed, serving  # noqa: E402

UVICORN = [
    sys.executable, "-m", "uvicorn", "bench.asgi:application", "--fd", "{fd}", "--lifespan", "off",
    "--log-level", "warning", "--no-access-log", "--http", "h11", "--ws", "wsproto",
]  # fmt: skip
KEY = "app.section3.key33"


def main() -> None:
    from config_registry_client import Registry

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        env = prepare_environment(Path(workdir))
        token = seed(env)
        with serving(UVICORN, env, Path(workdir) / "server.log") as url:
            context = {"environment": "production", "service": "chat", "user": "alice"}
            with Registry(url, token, **context, timeout=30) as registry:
                if not registry.wait_connected(30):
                    sys.exit(f"the watch did not connect: {registry.status().error}")
                plain = registry.values()
                print(f"{len(plain)} keys, revision {registry.revision}")
                dict_times = timeit.repeat(lambda: plain.get(KEY), number=args.calls, repeat=args.rounds)
                get_times = timeit.repeat(lambda: registry.get(KEY), number=args.calls, repeat=args.rounds)
                typed_times = timeit.repeat(lambda: registry.get_dict(KEY), number=args.calls, repeat=args.rounds)
                per_call = {name: min(times) / args.calls * 1e9 for name, times in
                            (("dict", dict_times), ("get", get_times), ("get_dict", typed_times))}  # fmt: skip
                print(f"dict.get   {per_call['dict']:7.1f} ns/call")
                print(f"get()      {per_call['get']:7.1f} ns/call   ratio {per_call['dict'] / per_call['get']:.2f}")
                print(
                    f"get_dict() {per_call['get_dict']:7.1f} ns/call   ratio {per_call['dict'] / per_call['get_dict']:.2f}"
                )
                spread = statistics.pstdev(t / args.calls * 1e9 for t in get_times)
                print(f"  (best of {args.rounds} rounds of {args.calls:,} calls; get() spread ±{spread:.1f} ns)")
                idle(registry, args.idle_seconds)


def idle(registry, seconds: float) -> None:
    """Count what the client sends and receives while the registry does not move."""
    requests, frames = [], []
    request = registry._http.request
    registry._http.request = lambda *a, **k: requests.append(a) or request(*a, **k)
    apply = registry._apply
    registry._apply = lambda *a, **k: frames.append(a) or apply(*a, **k)
    threading.Event().wait(seconds)  # the measured idle period itself
    minutes = seconds / 60
    print(
        f"idle watch, {seconds:.0f} s: {len(requests) / minutes:.1f} HTTP requests/min, "
        f"{len(frames) / minutes:.1f} configuration frames/min (target 0; keepalive pings aside), "
        f"still watching: {registry.status().watching}"
    )
    registry._http.request, registry._apply = request, apply


if __name__ == "__main__":
    main()
