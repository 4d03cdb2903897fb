"""The last-known-good file: the last values the registry gave, so a service can start while it is
unreachable. Mode 0600, written atomically. Secrets are encrypted with the caller's Fernet key, or, without
a key, left out (a read of one then says so)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RegistryUnavailable

FORMAT = 1


@dataclass(frozen=True)
class Saved:
    revision: int
    values: dict[str, Any]
    secrets: frozenset[str]
    saved_at: float


class LastKnownGood:
    def __init__(self, path: Path, key: str | bytes | None):
        self.path = path
        self._fernet = None
        if key is not None:
            try:
                from cryptography.fernet import Fernet
            except ImportError:
                raise RuntimeError(
                    "an encrypted last-known-good file needs cryptography: "
                    "pip install 'config-registry-client[encrypted-cache]'"
                ) from None
            self._fernet = Fernet(key)

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, url: str, context: dict, revision: int, values: dict[str, Any], secrets: frozenset[str]) -> None:
        plain = {key: value for key, value in values.items() if key not in secrets}
        record: dict[str, Any] = {
            "format": FORMAT,
            "url": url,
            "context": context,
            "revision": revision,
            "saved_at": time.time(),
            "values": plain,
            "secret_keys": sorted(secrets),
        }
        if self._fernet is not None and secrets:
            hidden = {key: values[key] for key in secrets if key in values}
            record["secrets"] = self._fernet.encrypt(json.dumps(hidden).encode()).decode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)  # mode 0600
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(record, file)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load(self, url: str, context: dict) -> Saved:
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            raise RegistryUnavailable(f"the last-known-good file {self.path} cannot be read: {error}") from None
        if record.get("format") != FORMAT or record.get("context") != context or record.get("url") != url:
            raise RegistryUnavailable(
                f"the last-known-good file {self.path} holds {record.get('context')} of {record.get('url')}, "
                f"not {context} of {url}"
            )
        values = dict(record["values"])
        if "secrets" in record:
            if self._fernet is None:
                raise RegistryUnavailable(
                    f"the last-known-good file {self.path} holds encrypted secrets: pass cache_key"
                )
            from cryptography.fernet import InvalidToken

            try:
                values.update(json.loads(self._fernet.decrypt(record["secrets"].encode())))
            except InvalidToken:
                raise RegistryUnavailable(
                    f"the secrets in {self.path} cannot be decrypted with the cache_key given"
                ) from None
        return Saved(record["revision"], values, frozenset(record["secret_keys"]), record["saved_at"])
