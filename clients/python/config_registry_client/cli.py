"""config-registry (python -m config_registry_client): resolve, get, watch, layers, publish, diff, exec.

The token comes from --token-file or the variable --token-env names (CONFIG_REGISTRY_TOKEN by default);
it is never printed. Errors go to stderr with exit code 2 (1 for `get` of a missing key)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3

from .errors import ConfigTypeError, MissingKey, RegistryError, RegistryUnavailable
from .registry import Registry
from .supervise import Supervisor


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        return arguments.run(arguments)
    except MissingKey as missing:
        _say(f"config-registry: {missing}", sys.stderr)
        return 1
    except (RegistryError, RegistryUnavailable, ConfigTypeError, ValueError) as error:
        _say(f"config-registry: {error}", sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="config-registry", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("CONFIG_REGISTRY_URL", "http://127.0.0.1:8000"))
    common.add_argument("--token-file", type=Path, help="a file holding the service token")
    common.add_argument("--token-env", default="CONFIG_REGISTRY_TOKEN", help="the variable holding the token")
    context = argparse.ArgumentParser(add_help=False, parents=[common])
    context.add_argument("--environment", "-e", required=True)
    context.add_argument("--service", "-s", required=True)
    context.add_argument("--user", "-u")
    context.add_argument("--last-known-good", type=Path, help="serve this file's values when the registry is down")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    resolve = commands.add_parser("resolve", parents=[context], help="print the resolved values as JSON")
    resolve.set_defaults(run=_resolve)
    get = commands.add_parser("get", parents=[context], help="print one key's value")
    get.add_argument("key")
    get.set_defaults(run=_get)
    watch = commands.add_parser("watch", parents=[context], help="print the values at once and at every change")
    watch.set_defaults(run=_watch)
    layers = commands.add_parser("layers", parents=[common], help="list the layers the token may see")
    layers.set_defaults(run=_layers)
    publish = commands.add_parser("publish", parents=[common], help="publish a new version of a layer")
    publish.add_argument("layer", help="a layer ref: global, environment:production, service:chat, …")
    publish.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="VALUE as JSON, else text")
    publish.add_argument("--unset", action="append", default=[], metavar="KEY")
    publish.add_argument("--secret", action="append", default=[], metavar="KEY", help="store KEY encrypted")
    publish.add_argument("--base", type=int, required=True, help="the version this change is based on")
    publish.add_argument("--comment", default="")
    publish.set_defaults(run=_publish)
    diff = commands.add_parser("diff", parents=[common], help="what changed between two versions of a layer")
    diff.add_argument("layer")
    diff.add_argument("--from", dest="start", type=int, required=True)
    diff.add_argument("--to", dest="end", type=int, required=True)
    diff.set_defaults(run=_diff)
    run = commands.add_parser(
        "exec", parents=[context], help="run CMD with the values as environment variables, restarted on a change"
    )
    run.add_argument("--prefix", default="", help="prepended to every variable name")
    run.add_argument("--map", action="append", default=[], metavar="KEY=NAME", help="KEY's variable is NAME")
    run.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL on a restart")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS…]")
    run.set_defaults(run=_exec)
    return parser


def _token(arguments) -> str:
    if arguments.token_file:
        token = arguments.token_file.read_text().strip()
    else:
        token = os.environ.get(arguments.token_env, "").strip()
    if not token:
        source = arguments.token_file or f"${arguments.token_env}"
        raise ValueError(f"no service token in {source} (--token-file FILE or --token-env NAME)")
    return token


def _registry(arguments, *, watch: bool) -> Registry:
    return Registry(
        arguments.url,
        _token(arguments),
        environment=arguments.environment,
        service=arguments.service,
        user=arguments.user,
        watch=watch,
        last_known_good=arguments.last_known_good,
    )


def _say(text: str, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(f"{text}\n")
    stream.flush()  # a pipe reads each line when it is written (watch, exec's logs)


def _print(value: Any) -> None:
    _say(value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True))


def _resolve(arguments) -> int:
    with _registry(arguments, watch=False) as registry:
        _print({"revision": registry.revision, "stale": registry.stale, "values": registry.values()})
    return 0


def _get(arguments) -> int:
    with _registry(arguments, watch=False) as registry:
        _print(registry.get(arguments.key))
    return 0


def _watch(arguments) -> int:
    done = threading.Event()
    with _registry(arguments, watch=True) as registry:
        _say(json.dumps({"revision": registry.revision, "values": registry.values()}))
        registry.on_change(
            lambda change: _say(
                json.dumps({"revision": change.revision, "changed": sorted(change.changed), "values": change.values}),
            )
        )
        done.wait()
    return 0


def _exec(arguments) -> int:
    command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
    if not command:
        raise ValueError("nothing to run: config-registry exec [options] -- CMD [ARGS…]")
    names = dict(_pair(item, "--map") for item in arguments.map)
    with _registry(arguments, watch=True) as registry:
        supervisor = Supervisor(command, base=os.environ, prefix=arguments.prefix, names=names, grace=arguments.grace)
        return supervisor.run(registry)


def _api(arguments, method: str, path: str, body: dict | None = None) -> Any:
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=30), retries=False)
    headers = {"Authorization": f"Bearer {_token(arguments)}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        response = http.request(
            method,
            f"{arguments.url.rstrip('/')}/api/v1/{path}",
            headers=headers,
            body=json.dumps(body) if body else None,
        )
    except urllib3.exceptions.HTTPError as error:
        raise RegistryUnavailable(f"the registry at {arguments.url} is unreachable: {error}") from None
    answer = json.loads(response.data or b"null")
    if response.status >= 400:
        details = answer.get("errors") if isinstance(answer, dict) else None
        message = answer.get("message", "") if isinstance(answer, dict) else str(answer)
        raise RegistryError(
            response.status, answer.get("error", ""), f"{message} {json.dumps(details)}" if details else message
        )
    return answer


def _layers(arguments) -> int:
    answer = _api(arguments, "GET", "layers")
    layers = answer["results"] if isinstance(answer, dict) and "results" in answer else answer
    for layer in layers:
        _say(f"{layer['ref']:<40} v{layer.get('current_version', 0):<5} {layer.get('description', '')}")
    return 0


def _publish(arguments) -> int:
    values = dict(_pair(item, "--set") for item in arguments.set)
    body = {
        "base_version": arguments.base,
        "set": {key: _parsed(value) for key, value in values.items()},
        "unset": arguments.unset,
        "secrets": arguments.secret,
        "comment": arguments.comment,
    }
    answer = _api(arguments, "POST", f"layers/{quote(arguments.layer, safe=':')}/versions", body)
    _say(f"{arguments.layer}: version {answer['version']}")
    for change in answer.get("changes", []):
        _say(f"  {change['change']:<8} {change['key']}{' (secret)' if change.get('secret') else ''}")
    return 0


def _diff(arguments) -> int:
    path = f"layers/{quote(arguments.layer, safe=':')}/diff?from={arguments.start}&to={arguments.end}"
    _print(_api(arguments, "GET", path))
    return 0


def _pair(item: str, option: str) -> tuple[str, str]:
    key, sign, value = item.partition("=")
    if not sign or not key:
        raise ValueError(f"{option} wants KEY=VALUE, not {item!r}")
    return key, value


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON: the text itself
