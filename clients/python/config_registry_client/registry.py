"""Registry: one context's resolved configuration, read once over HTTP, then kept current by a watch over
/ws/config/ and served from memory. When the registry cannot be reached at start, the last-known-good file
serves it, marked stale with its revision and age; with neither, construction fails (never a silent blank)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from .errors import ConfigTypeError, MissingKey, RegistryError, RegistryUnavailable
from .last_known_good import LastKnownGood

logger = logging.getLogger("config_registry_client")
MASK = "********"
_MISSING: Any = object()
# Close codes after which retrying cannot help: the token, its scope or limits, the parameters, the user.
PERMANENT_CLOSES = {4400: "bad parameters", 4401: "token refused", 4403: "scope or limits", 4404: "unknown user"}


@dataclass(frozen=True)
class Status:
    """Where the values come from and how current they are known to be."""

    stale: bool  # not confirmed current: read from the last-known-good file, or the watch is down
    revision: int | None
    age: float  # seconds since the values were last confirmed current (by the registry, or when saved)
    source: str  # "registry" or "last-known-good"
    watching: bool  # the watch socket is connected
    error: str | None  # the last problem met, if any


@dataclass(frozen=True)
class Change:
    revision: int
    changed: frozenset[str]  # keys added, removed or with a new value
    values: dict[str, Any]


class Registry:
    """Registry(url, token, environment=, service=, user=None): see the project's README, "Python client".

    Thread-safe. Use as a context manager (or call close()) so the watch thread stops."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        environment: str,
        service: str,
        user: str | None = None,
        watch: bool = True,
        last_known_good: str | Path | None = None,
        cache_key: str | bytes | None = None,
        timeout: float = 10.0,
        backoff: tuple[float, float] = (0.5, 30.0),
    ):
        self.url = url.rstrip("/")
        self._token = token
        self.context = {"environment": environment, "service": service, **({"user": user} if user else {})}
        self._timeout = timeout
        self._backoff = backoff
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)
        self._lock = threading.RLock()
        self._values: dict[str, Any] = {}
        self._secrets: frozenset[str] = frozenset()
        self._revision: int | None = None
        self._etag: str | None = None
        self._confirmed_at = 0.0  # time.time() of the last confirmation
        self._confirmed = False
        self._source = "registry"
        self._error: str | None = None
        self._callbacks: list[Callable[[Change], None]] = []
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._disconnected.set()
        self._socket = None
        self._file = LastKnownGood(Path(last_known_good), cache_key) if last_known_good else None
        self._thread: threading.Thread | None = None
        self._start()
        if watch:
            self._thread = threading.Thread(target=self._watch, name="config-registry-watch", daemon=True)
            self._thread.start()

    # Reads: from memory ------------------------------------------------------------------------

    def get(self, key: str, default: Any = _MISSING) -> Any:
        value = self._values.get(key, _MISSING)  # no lock: a change replaces the dict whole, never edits it
        if value is not _MISSING:
            return value
        if default is not _MISSING:
            return default
        if key in self._secrets:  # known, but not kept on disk without a cache_key
            where = f"{self._where()}: a secret left out of the last-known-good file (pass cache_key to keep it)"
            raise MissingKey(key, where)
        raise MissingKey(key, self._where())

    def get_str(self, key: str, default: Any = _MISSING) -> str:
        return self._typed(key, default, (str,), "a string")

    def get_int(self, key: str, default: Any = _MISSING) -> int:
        return self._typed(key, default, (int,), "an integer")

    def get_float(self, key: str, default: Any = _MISSING) -> float:
        return float(self._typed(key, default, (int, float), "a number"))

    def get_bool(self, key: str, default: Any = _MISSING) -> bool:
        return self._typed(key, default, (bool,), "a boolean")

    def get_list(self, key: str, default: Any = _MISSING) -> list:
        return self._typed(key, default, (list,), "a list")

    def get_dict(self, key: str, default: Any = _MISSING) -> dict:
        return self._typed(key, default, (dict,), "an object")

    def values(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    @property
    def revision(self) -> int | None:
        return self._revision

    @property
    def secrets(self) -> frozenset[str]:
        return self._secrets

    @property
    def stale(self) -> bool:
        return self.status().stale

    def status(self) -> Status:
        with self._lock:
            watching = self._connected.is_set()
            confirmed = watching or (self._confirmed and self._thread is None)
            return Status(
                stale=not confirmed,
                revision=self._revision,
                age=0.0 if watching else max(0.0, time.time() - self._confirmed_at),
                source=self._source,
                watching=watching,
                error=self._error,
            )

    def on_change(self, callback: Callable[[Change], None]) -> Callable[[Change], None]:
        """Call `callback(change)` after every change of the values (from the watch's thread)."""
        self._callbacks.append(callback)
        return callback

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the watch is connected (True) or `timeout` passes (False)."""
        return self._connected.wait(timeout)

    def wait_disconnected(self, timeout: float | None = None) -> bool:
        """Block until the watch has lost its socket (True) or `timeout` passes (False)."""
        return self._disconnected.wait(timeout)

    # Conditional refresh ------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Ask the registry (If-None-Match: the last ETag); True when the values changed."""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if self._etag:
            headers["If-None-Match"] = self._etag
        address = f"{self.url}/api/v1/resolve?{urlencode(self.context)}"
        try:
            response = self._http.request("GET", address, headers=headers)
        except urllib3.exceptions.HTTPError as error:
            self._error = f"the registry at {self.url} is unreachable: {error}"
            with self._lock:
                self._confirmed = False
            raise RegistryUnavailable(self._error) from None
        if response.status == 304:
            with self._lock:
                self._confirmed, self._confirmed_at, self._error = True, time.time(), None
            return False
        answer = _json(response)
        if response.status >= 500:
            self._error = f"the registry answered {response.status}: {answer.get('message', '')}".strip()
            raise RegistryUnavailable(self._error)
        if response.status != 200:
            raise RegistryError(response.status, answer.get("error", ""), answer.get("message", str(answer)))
        masked = {key for key, value in answer["values"].items() if value == MASK}
        secrets = frozenset(answer.get("secrets", masked))
        changed = self._apply(answer["revision"], answer["values"], secrets, source="registry")
        self._etag = response.headers.get("ETag")
        return changed

    # Lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        socket = self._socket
        if socket is not None:
            socket.close()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout + 5)
        self._http.clear()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Inside -------------------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            self.refresh()
        except RegistryUnavailable:
            if self._file is None or not self._file.exists():
                where = f" and no last-known-good file at {self._file.path}" if self._file else ""
                raise RegistryUnavailable(f"{self._error}{where}") from None
            saved = self._file.load(self.url, self.context)
            with self._lock:
                self._values, self._secrets, self._revision = saved.values, saved.secrets, saved.revision
                self._source, self._confirmed, self._confirmed_at = "last-known-good", False, saved.saved_at
            logger.warning(
                "config registry unreachable: serving revision %s from %s, saved %.0f s ago",
                saved.revision,
                self._file.path,
                time.time() - saved.saved_at,
            )

    def _apply(self, revision: int, values: dict[str, Any], secrets: frozenset[str], *, source: str) -> bool:
        with self._lock:
            old = self._values
            changed = frozenset(key for key in old.keys() | values.keys() if old.get(key, _MISSING) != values.get(key))
            moved = revision != self._revision or changed
            self._values, self._secrets, self._revision = dict(values), secrets, revision
            self._source, self._confirmed, self._confirmed_at, self._error = source, True, time.time(), None
        if moved and self._file is not None:
            try:
                self._file.save(self.url, self.context, revision, values, secrets)
            except OSError as error:
                logger.warning("could not write the last-known-good file %s: %s", self._file.path, error)
        if changed:
            change = Change(revision, changed, dict(values))
            for callback in list(self._callbacks):
                try:
                    callback(change)
                except Exception:  # a caller's callback must not stop the watch
                    logger.exception("config registry change callback failed")
        return bool(changed)

    def _watch(self) -> None:
        """Follow /ws/config/ until close(): reconnect with full-jitter exponential backoff."""
        scheme = "wss" if self.url.startswith("https") else "ws"
        address = f"{scheme}{self.url[self.url.index(':') :]}/ws/config/?{urlencode(self.context, quote_via=quote)}"
        headers = {"Authorization": f"Bearer {self._token}"}
        attempt = 0
        while not self._stop.is_set():
            try:
                with connect(address, additional_headers=headers, open_timeout=self._timeout, close_timeout=2) as ws:
                    self._socket = ws
                    if self._stop.is_set():
                        break
                    for message in ws:
                        frame = json.loads(message)
                        if frame.get("type") == "config":
                            masked = {key for key, value in frame["values"].items() if value == MASK}
                            secrets = frozenset(frame.get("secrets", masked))
                            self._apply(frame["revision"], frame["values"], secrets, source="registry")
                            self._disconnected.clear()
                            self._connected.set()
                            attempt = 0
                        elif frame.get("type") == "error":
                            self._error = f"{frame.get('code')}: {frame.get('message')}"
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                if code in PERMANENT_CLOSES:
                    self._error = f"the watch was closed for good ({code}, {PERMANENT_CLOSES[code]}): {self._error}"
                    logger.error("config registry: %s", self._error)
                    return
                self._error = f"the watch closed ({code}); reconnecting"
            except InvalidStatus as refused:
                self._error = f"the watch was refused with HTTP {refused.response.status_code}"
            except (OSError, InvalidHandshake, TimeoutError) as error:
                self._error = f"the registry at {self.url} is unreachable for the watch: {error}"
            finally:
                self._socket = None
                self._connected.clear()
                self._disconnected.set()
            if self._stop.is_set():
                break
            low, high = self._backoff
            self._stop.wait(random.uniform(0, min(high, low * 2**attempt)))  # full jitter
            attempt += 1

    def _typed(self, key: str, default: Any, kinds: tuple[type, ...], expected: str) -> Any:
        value = self._values.get(key, _MISSING)
        if type(value) in kinds:  # JSON's own types: the common case, one look-up
            return value
        if value is _MISSING:
            value = self.get(key, default)
        wrong = not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
        if wrong:
            shown = "a secret" if key in self._secrets else f"{type(value).__name__} {value!r}"[:80]
            raise ConfigTypeError(key, expected, shown, self._where())
        return value

    def _where(self) -> str:
        context = ",".join(f"{name}={value}" for name, value in self.context.items())
        return f"{context} at revision {self._revision}"


def _json(response) -> dict:
    try:
        answer = json.loads(response.data or b"{}")
    except ValueError:
        return {"message": response.data[:200].decode(errors="replace")}
    return answer if isinstance(answer, dict) else {"message": str(answer)}
