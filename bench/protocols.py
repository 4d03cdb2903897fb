"""Benchmark: a warm read through each drop-in protocol (SPEC §9) against the native warm resolve of
the same context, in the same run, under the production serving (gunicorn gthread, 2 × 16). Target:
each protocol ≥ 0.8 of native.

Run by hand (needs `wrk`), from the project root, like bench/api_resolve.py (same database rules):

    .venv/bin/python bench/protocols.py [--seconds 10] [--connections 32] [--rounds 3]

The context: 5 layers of 50 keys (global, environment, service, a group, the user), no secrets (the
protocols refuse secret views to a token without secrets:read, and a reveal is an audited write).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_resolve import SERVINGS, prepare_environment, serving_process, tree_cpu_seconds, wrk  # noqa: E402

SEED = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import Group, User
from config_registry.audit import Actor
from config_registry.services import layer_create, version_publish, token_create
actor = Actor("bench")
alice = User.objects.create_user("alice")
alice.groups.add(Group.objects.create(name="beta"))
for position, ref in enumerate(["global", "environment:production", "service:chat", "group:beta", "user:alice"]):
    layer = layer_create(ref=ref, priority=position, actor=actor)
    values = {f"app.section{i % 10}.key{i}": {"value": i, "layer": ref} for i in range(position * 30, position * 30 + 50)}
    version_publish(layer=layer, base_version=0, set_=values, actor=actor)
print(token_create(name="bench", scopes=["config:read"], actor=actor)[1])
"""
CONTEXT = {"targetingKey": "alice", "environment": "production", "service": "chat"}
NATIVE = "native warm resolve"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        env = prepare_environment(Path(workdir))
        seeded = subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, capture_output=True, text=True)
        if seeded.returncode:
            sys.exit(f"seeding failed (the database must exist and be empty):\n{seeded.stderr[-2000:]}")
        token = seeded.stdout.strip().splitlines()[-1]
        ofrep_script = Path(workdir) / "ofrep.lua"
        ofrep_script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(json.dumps({'context': CONTEXT}))}\n"
        )
        endpoints = {
            NATIVE: ("/api/v1/resolve?environment=production&service=chat&user=alice", (), ""),
            "Vault KV v2 config/data/production/chat/alice": (
                "/v1/config/data/production/chat/alice",
                (f"X-Vault-Token: {token}",),
                "",
            ),
            "Spring /spring/chat/production (service view)": ("/spring/chat/production", (), ""),
            "OFREP one flag (POST)": ("/ofrep/v1/evaluate/flags/app.section0.key0", (), str(ofrep_script)),
            "OFREP bulk (POST)": ("/ofrep/v1/evaluate/flags", (), str(ofrep_script)),
        }
        name = "gunicorn gthread, 2 workers x 16 threads (WSGI; make serve-prod, project/gunicorn.conf.py)"
        log = Path(workdir) / "server.log"
        print(f"database: {env['DATABASE_URL'].split('://')[0]}, redis: {'yes' if env.get('REDIS_URL') else 'no'}")
        with serving_process(SERVINGS[name], env, log) as (base, process):
            for path, headers, script in endpoints.values():
                wrk(base + path, token, 2, 4, log, headers, script)  # warm up

            def measured(path: str, headers: tuple, script: str) -> dict[str, float]:
                before = tree_cpu_seconds(process.pid)  # the server's own CPU: wrk shares the host's cores
                result = wrk(base + path, token, args.seconds, args.connections, log, headers, script)
                return {
                    **result,
                    "cpu_us": (tree_cpu_seconds(process.pid) - before) / (result["rps"] * args.seconds) * 1e6,
                }

            rounds = [
                {label: measured(path, headers, script) for label, (path, headers, script) in endpoints.items()}
                for _ in range(args.rounds)
            ]
        print(f"\n{name} (medians of {args.rounds} rounds)")
        for label in endpoints:
            rates = [run[label]["rps"] for run in rounds]
            ratios = [run[label]["rps"] / run[NATIVE]["rps"] for run in rounds]
            costs = [run[NATIVE]["cpu_us"] / run[label]["cpu_us"] for run in rounds]
            print(
                f"  {label:48} {statistics.median(rates):8.0f} req/s  of native {statistics.median(ratios):.2f} "
                f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}; target ≥ 0.8); by server CPU per request "
                f"{statistics.median(costs):.2f} ({statistics.median(run[label]['cpu_us'] for run in rounds):.0f} µs)"
            )


if __name__ == "__main__":
    main()
