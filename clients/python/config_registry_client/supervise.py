"""`config-registry exec -- CMD`: run a program with its resolved configuration as environment variables and
restart it when a publish changes them (SIGTERM, a grace period, then SIGKILL), as Vault Agent's process
supervisor and envconsul do: the migration path for programs that still read the environment."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Mapping
from typing import Any

from .registry import Registry

FORWARDED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)  # passed on; the child keeps running
ENDING = (signal.SIGTERM, signal.SIGINT)  # passed on; exec ends when the child has


def env_name(key: str, prefix: str = "") -> str:
    """`database.password` → `DATABASE_PASSWORD` (dots and other punctuation become underscores)."""
    return prefix + re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").upper()


def env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)  # true/false, numbers, lists and objects as JSON


def environment_for(
    values: Mapping[str, Any], base: Mapping[str, str], *, prefix: str = "", names: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: `base` with every resolved key under its mapped name (`--map` first)."""
    names = names or {}
    environment = dict(base)
    for key, value in values.items():
        environment[names.get(key) or env_name(key, prefix)] = env_value(value)
    return environment


class Supervisor:
    def __init__(
        self, command: list[str], *, base: Mapping[str, str], prefix: str, names: Mapping[str, str], grace: float
    ):
        self.command, self.base, self.prefix, self.names, self.grace = command, base, prefix, names, grace
        self.events: queue.SimpleQueue = queue.SimpleQueue()  # put() is safe from a signal handler
        self.restarts = 0

    def run(self, registry: Registry) -> int:
        registry.on_change(lambda change: self.events.put(("change", change.values)))
        for number in FORWARDED + ENDING:
            signal.signal(number, lambda received, frame: self.events.put(("signal", received)))
        environment = self._environment(registry.values())
        child = self._start(environment)
        while True:
            try:
                kind, payload = self.events.get(timeout=1.0)  # wakes for signals at least every second
            except queue.Empty:
                continue
            if kind == "exited" and payload is child:
                return _exit_code(child.returncode)
            if kind == "change":
                renewed = self._environment(payload)
                if renewed != environment:
                    self._stop(child)
                    environment, child = renewed, self._start(renewed)
                    self.restarts += 1
            elif kind == "signal":
                if payload in ENDING:
                    child.send_signal(payload)
                    self._stop(child, already_signalled=True)
                    return _exit_code(child.returncode)
                child.send_signal(payload)

    def _environment(self, values: Mapping[str, Any]) -> dict[str, str]:
        return environment_for(values, self.base, prefix=self.prefix, names=self.names)

    def _start(self, environment: dict[str, str]) -> subprocess.Popen:
        child = subprocess.Popen(self.command, env=environment)
        threading.Thread(target=lambda: (child.wait(), self.events.put(("exited", child))), daemon=True).start()
        return child

    def _stop(self, child: subprocess.Popen, *, already_signalled: bool = False) -> None:
        if child.poll() is not None:
            return
        if not already_signalled:
            child.terminate()
        try:
            child.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            child.kill()  # it did not stop within the grace period
            child.wait()


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode  # killed by signal N: 128 + N, as a shell says
