"""Benchmark: a change costs what it changes (SPEC §7).

Run by hand, from the project root:

    .venv/bin/python bench/scale.py [--only publish,resolve,storage,fanout] [--users 1000,3000]

1. publish: one changed key in layers of 250, 1,000 and 4,000 keys (service call): median ms of
   --publishes publishes each, and the 4,000/250 ratio (target ≤ 1.5).
2. resolve: cold resolution (no cache) of 3 layers × 500, 1,000, 2,000 and 4,000 keys: median ms
   and the growth from one size to the next (target: 2× keys ≤ 2.2× time).
3. fanout: --users distinct chat users connected to one uvicorn process; after one publish to
   service:chat, the time until the last of them has its new config frame, against the time a room
   message takes to reach the same connections in the same run (target ≤ 3×), and the server's CPU
   seconds per publish.
4. storage: database bytes per version for a one-key change in a 4,000-key layer.

Uses a fresh SQLite file by default; set DATABASE_URL (an existing, empty database) and REDIS_URL to
run on PostgreSQL and Redis.
"""

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat_soak import setup_django  # noqa: E402


def _actor():
    from config_registry.audit import Actor

    return Actor("bench", may_write_security=True)


def _layer_with(ref: str, keys: int):
    from config_registry.services import layer_create, version_publish

    layer = layer_create(ref=ref, actor=_actor())
    version_publish(
        layer=layer,
        base_version=0,
        set_={f"k.key{i:05}": {"n": i, "label": f"value {i}"} for i in range(keys)},
        actor=_actor(),
    )
    layer.refresh_from_db()
    return layer


def _one_key(layer, n: int) -> None:
    from config_registry.services import version_publish

    version = version_publish(layer=layer, base_version=layer.current_version, set_={"k.key00007": n}, actor=_actor())
    layer.current_version = version.number


def bench_publish(publishes: int) -> None:
    print("\n1. publish of one key (service call)")
    medians = {}
    for keys in (250, 1000, 4000):
        layer = _layer_with(f"environment:publish{keys}", keys)
        timings = []
        for n in range(publishes):
            started = time.perf_counter()
            _one_key(layer, n)
            timings.append((time.perf_counter() - started) * 1000)
        medians[keys] = statistics.median(timings)
        print(
            f"  {keys:5} keys: median {medians[keys]:7.2f} ms  (p90 {sorted(timings)[int(0.9 * len(timings))]:.2f} ms)"
        )
    print(f"  4,000 / 250 = {medians[4000] / medians[250]:.2f}  (target ≤ 1.5; before #13: 14)")


def bench_resolve(rounds: int) -> None:
    from config_registry.memory import memos_clear
    from config_registry.selectors.resolution import _resolution

    print("\n2. cold resolve, 3 layers (environment, service, user; the same keys in each), no cache")
    from django.contrib.auth.models import User

    previous = None
    for keys in (500, 1000, 2000, 4000):
        User.objects.create(username=f"cold{keys}")
        for ref in (f"environment:cold{keys}", f"service:cold{keys}", f"user:cold{keys}"):
            _layer_with(ref, keys)
        timings = []
        for _ in range(rounds):
            memos_clear()
            started = time.perf_counter()
            _, resolution = _resolution(f"cold{keys}", f"cold{keys}", f"cold{keys}")
            timings.append((time.perf_counter() - started) * 1000)
        assert len(resolution.values) == keys
        median = statistics.median(timings)
        growth = f"  ×{median / previous:.2f} for 2× keys (target ≤ 2.2)" if previous else ""
        print(f"  3 layers × {keys:5} keys: median {median:8.2f} ms{growth}")
        previous = median


def _database_bytes() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname IN "
                "('config_registry_entry', 'config_registry_layerversion', 'config_registry_auditevent')"
            )
            return int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'config_registry_entry%' "
            "OR name LIKE 'config_registry_layerversion%' OR name LIKE 'config_registry_auditevent%' "
            "OR name LIKE 'entry_%'"
        )
        return int(cursor.fetchone()[0])


def bench_storage(publishes: int) -> None:
    from django.db import connection

    print("\n4. storage per version, one-key change in a 4,000-key layer")
    layer = _layer_with("environment:storage", 4000)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM")
    before = _database_bytes()
    for n in range(publishes):
        _one_key(layer, n)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM")
    grown = _database_bytes() - before
    print(
        f"  {publishes} publishes: {grown / 1024:.1f} KiB in all, {grown / publishes / 1024:.2f} KiB per version "
        f"(entries, versions and audit tables with their indexes; before #13: 276 KiB per version)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="publish,resolve,storage,fanout")
    parser.add_argument("--publishes", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--users", default="1000,3000")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as workdir:
        env = setup_django(Path(workdir))
        gc.freeze()  # as project/asgi.py and project/wsgi.py do in the servers, once Django is loaded
        print(f"database: {env['DATABASE_URL'].split('://')[0]}, redis: {'yes' if env.get('REDIS_URL') else 'no'}")
        if "publish" in parts:
            bench_publish(args.publishes)
        if "resolve" in parts:
            bench_resolve(args.rounds)
        if "storage" in parts:
            bench_storage(args.publishes)
        if "fanout" in parts:
            from bench.fanout import bench_fanout

            bench_fanout(env, Path(workdir), [int(n) for n in args.users.split(",")], rounds=5)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
