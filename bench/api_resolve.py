"""Benchmark: warm GET /api/v1/resolve against a bare DRF endpoint of the same app, and against
django-constance reading 50 settings, under each way of serving HTTP that the README documents.

Run by hand (needs `wrk`: apt-get install wrk), from the project root:

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/api_resolve.py [--seconds 10] [--connections 32] [--rounds 3] [--only gunicorn]

Uses a fresh SQLite file by default; set DATABASE_URL (and REDIS_URL) to measure on PostgreSQL
(and Redis): it must name an existing, empty database (e.g. `dropdb --if-exists bench_registry;
createdb bench_registry`). Prints req/s, p50 and p99 for each endpoint (medians of rounds that take every
endpoint in turn) and the ratios to the bare endpoint (the median of the rounds' own ratios).
"""

import argparse
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def prepare_environment(workdir: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = dict(os.environ)
    env.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    env.update(
        {
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "CONFIG_REGISTRY_KEYS": Fernet.generate_key().decode(),
            "API_THROTTLE_RATE": "100000000/min",
            "DJANGO_SETTINGS_MODULE": "bench.settings",
        }
    )
    return env


def seed(env: dict[str, str]) -> str:
    """The realistic context: global, environment, service, two groups and a user; 200 keys."""
    script = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import Group, User
from config_registry.audit import Actor
from config_registry.services import layer_create, version_publish, token_create
actor = Actor("bench", may_write_security=True)
alice = User.objects.create_user("alice")
for name in ("staff", "beta"):
    alice.groups.add(Group.objects.create(name=name))
layers = ["global", "environment:production", "service:chat", "group:beta", "group:staff", "user:alice"]
for position, ref in enumerate(layers):
    layer = layer_create(ref=ref, priority=position, actor=actor)
    values = {f"app.section{i % 10}.key{i}": {"value": i, "layer": ref, "tags": ["a", "b"]}
              for i in range(position * 30, position * 30 + 50)}
    values[f"app.secret{position}"] = "s3cret-" + ref
    version_publish(layer=layer, base_version=0, set_=values, secrets=[f"app.secret{position}"], actor=actor)
_, raw = token_create(name="bench", scopes=["config:read"], actor=actor)
print(raw)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(
            f"seeding the benchmark database failed (it must exist and be empty):\n"
            f"{result.stderr.strip().splitlines()[-1]}"
        )
    return result.stdout.strip().splitlines()[-1]


@contextmanager
def serving(command: list[str], env: dict[str, str], log: Path):
    """Start a server on a pre-bound free port (requests queue until it accepts); stop it after."""
    with serving_process(command, env, log) as (url, _):
        yield url


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))  # parent → children
    todo, total = [pid], 0.0
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        total += ticks / os.sysconf("SC_CLK_TCK")
        todo += children.get(current, [])
    return total


@contextmanager
def serving_process(command: list[str], env: dict[str, str], log: Path):
    """As serving(), yielding (url, the server's process)."""
    if any("{port}" in part for part in command):
        yield from _serving_on_a_port(command, env, log)
        return
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    fd, port = sock.fileno(), sock.getsockname()[1]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [part.replace("{fd}", str(fd)) for part in command],
            cwd=ROOT,
            env=env,
            pass_fds=[fd],
            stdout=output,
            stderr=output,
        )
    sock.close()
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _serving_on_a_port(command: list[str], env: dict[str, str], log: Path):
    """A server that binds its own listeners (gunicorn's reuse_port: one socket per worker, which the
    kernel balances connections across): on a free port, once it accepts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in command], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    deadline = time.monotonic() + 60
    while True:  # polling is fine in a benchmark (never in a test): the workers bind when they have booted
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.terminate()
                sys.exit(f"the server did not listen on {port}:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=30)


def wrk(
    url: str, token: str, seconds: int, connections: int, log: Path, headers: tuple[str, ...] = (), script: str = ""
) -> dict[str, float]:
    """wrk's rate and latency for `url` (GET with the bearer token and `headers`; `script`: a wrk Lua file)."""
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-H",
            f"Authorization: Bearer {token}",
            *(argument for header in headers for argument in ("-H", header)),
            *(("-s", script) if script else ()),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        server_log = log.read_text()[-3000:]
        sys.exit(f"{url}: {non_2xx.group(1)} failed responses\n{output}\nserver log (end):\n{server_log}")

    def percentile(name: str) -> float:
        value, unit = re.search(rf"{name}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rate, "p50": percentile("50"), "p99": percentile("99")}


SERVINGS = {
    "uvicorn, 1 worker (ASGI)": [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.asgi:application",
        "--fd",
        "{fd}",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--no-access-log",
    ],
    "uvicorn, 1 worker, h11 parser (ASGI; make run / make serve: Vault's LIST passes)": [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.asgi:application",
        "--fd",
        "{fd}",
        "--http",
        "h11",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--no-access-log",
    ],
    "uvicorn, 2 workers (ASGI)": [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.asgi:application",
        "--fd",
        "{fd}",
        "--workers",
        "2",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--no-access-log",
    ],
    "gunicorn sync, 2 workers (WSGI; the production serving until #11)": [
        sys.executable,
        "-m",
        "gunicorn",
        "bench.wsgi:application",
        "--bind",
        "fd://{fd}",
        "--workers",
        "2",
        "--log-level",
        "warning",
    ],
    "gunicorn gthread, 2 workers x 16 threads (WSGI; make serve-prod, project/gunicorn.conf.py)": [
        sys.executable,
        "-m",
        "gunicorn",
        "bench.wsgi:application",
        "-c",
        "project/gunicorn.conf.py",
        "--bind",
        "127.0.0.1:{port}",  # reuse_port: each worker binds its own socket, as under make serve-prod
        "--workers",
        "2",
        "--threads",
        "16",
        "--log-level",
        "warning",
    ],
}
RESOLVE = "warm resolve (6 layers, 200 keys, 2 groups)"
ENDPOINTS = {
    "bare DRF endpoint": "/bench/bare",
    "warm resolve (6 layers, 200 keys, 2 groups)": "/api/v1/resolve?environment=production&service=chat&user=alice",
    "django-constance, 50 settings": "/bench/constance",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", default="", help="run only the servings whose name contains this")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every endpoint in turn (medians reported)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as workdir:
        env = prepare_environment(Path(workdir))
        token = seed(env)
        print(
            f"database: {env['DATABASE_URL'].split('://')[0]}, cache/layer: {'redis' if env.get('REDIS_URL') else 'local memory'}; "
            f"{args.seconds}s per run, {args.connections} connections, wrk -t2"
        )
        for serving_name, command in SERVINGS.items():
            if args.only not in serving_name:
                continue
            log = Path(workdir) / "server.log"
            with serving_process(command, env, log) as (base, process):
                wrk(base + ENDPOINTS["warm resolve (6 layers, 200 keys, 2 groups)"], token, 2, 4, log)  # warm up

                def measured(path: str) -> dict[str, float]:
                    """wrk's figures, and the server's own CPU per request (wrk shares this host's cores)."""
                    before = tree_cpu_seconds(process.pid)
                    result = wrk(base + path, token, args.seconds, args.connections, log)
                    spent = tree_cpu_seconds(process.pid) - before
                    return {**result, "cpu_us": spent / (result["rps"] * args.seconds) * 1e6}

                # Rounds of every endpoint in turn: this machine's throughput drifts by half from one
                # ten seconds to the next, so each ratio compares endpoints measured side by side.
                rounds = [{name: measured(path) for name, path in ENDPOINTS.items()} for _ in range(args.rounds)]
            results = {
                name: {
                    key: statistics.median(run[name][key] for run in rounds) for key in ("rps", "p50", "p99", "cpu_us")
                }
                for name in ENDPOINTS
            }
            bare = results["bare DRF endpoint"]["rps"]
            print(f"\n{serving_name} (medians of {args.rounds} rounds)")
            print(
                f"  {'endpoint':46} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'of bare':>8} {'server CPU µs/req':>18}"
            )
            for name, result in results.items():
                print(
                    f"  {name:46} {result['rps']:9.0f} {result['p50']:8.2f} {result['p99']:8.2f} "
                    f"{result['rps'] / bare:8.2f} {result['cpu_us']:18.0f}"
                )
            ratios = [run[RESOLVE]["rps"] / run["bare DRF endpoint"]["rps"] for run in rounds]
            versus = [run[RESOLVE]["rps"] / run["django-constance, 50 settings"]["rps"] for run in rounds]
            costs = [run["bare DRF endpoint"]["cpu_us"] / run[RESOLVE]["cpu_us"] for run in rounds]
            print(
                f"  resolve / bare = {statistics.median(ratios):.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)}; "
                f"target ≥ 0.85); resolve / constance = {statistics.median(versus):.1f}× (target ≥ 10×)\n"
                f"  by the server's CPU per request, resolve / bare = {statistics.median(costs):.2f} "
                f"(rounds {', '.join(f'{c:.2f}' for c in costs)})"
            )


if __name__ == "__main__":
    main()
