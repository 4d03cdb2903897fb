"""The security-config accessor: the one way code gets secrets such as chat.signing_keys.

Values are resolved through the registry for this deployment's own context only
(REGISTRY_ENVIRONMENT, the asking service): group and user layers can never change them.
Nothing here, or anywhere else, falls back to settings or the environment.
"""

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from .exceptions import RegistryUnavailable, SecretUndecryptable, SecurityConfigMissing, SecurityConfigUnreadable
from .memory import PositionMemo
from .selectors import registry_position, registry_position_known, sealed_open, service_resolution
from .validation import SECURITY_KEYS

logger = logging.getLogger(__name__)

# Plaintexts by (service, key) at one (epoch, revision); and which could not be read, logged once there.
SECRETS: PositionMemo[tuple[str, str], Any] = PositionMemo("security secrets", 64, depends_on=lambda p: p[:2])
UNREADABLE: PositionMemo[tuple[str, str], bool] = PositionMemo("unreadable secrets logged", 64, lambda p: p[:2])


def security_secret_known(key: str, *, service: str = "chat", max_age: float) -> Any | None:
    """security_secret(key, service=service, max_age=max_age) if this process has it in memory for
    the position it knows without I/O (safe on an event loop); None when it would have to read."""
    position = registry_position_known(max_age)
    return None if position is None else SECRETS.get(position, (service, key))


def security_secret(key: str, *, service: str = "chat", max_age: float = 0.0) -> Any:
    """The plaintext of secret `key` for (REGISTRY_ENVIRONMENT, `service`), at the current revision.

    Kept in process memory per revision, so a hot path pays one small query and a publish
    anywhere is seen at the next call; with `max_age`, a hot path may even skip that query and
    trust the position this process saw (read, or announced by the broadcaster) at most that
    many seconds ago. The process is the reader here, not a person, so reads are not audited.
    Raises SecurityConfigMissing if the key is absent or was not published as a secret
    (SecurityConfigUnreadable if it cannot be decrypted: logged once per registry position),
    RegistryUnavailable if the database cannot be reached.
    """
    if key not in SECURITY_KEYS:
        raise ValueError(f"{key} is not among validation.SECURITY_KEYS, the keys no API may serve")
    environment = settings.REGISTRY_ENVIRONMENT
    try:
        position = registry_position(max_age)
        known = SECRETS.get(position, (service, key))
        if known is not None:
            return known
        revision, resolution = service_resolution(environment=environment, service=service, max_age=max_age)
    except DatabaseError as error:
        raise RegistryUnavailable(f"the registry database is unavailable: {error}") from error
    if key not in resolution.values:
        raise SecurityConfigMissing(key=key, environment=environment, service=service)
    if key not in resolution.secrets:
        raise SecurityConfigMissing(
            key=key, environment=environment, service=service, reason="is published in plain text, not as a secret"
        )
    try:
        value = sealed_open(resolution.values[key])
    except SecretUndecryptable as error:
        unreadable = SecurityConfigUnreadable(key=key, environment=environment, service=service, error=error)
        if UNREADABLE.get(position, (service, key)) is None:  # once per position, not per caller
            UNREADABLE.put(position, (service, key), True)
            logger.error("%s", unreadable)
        raise unreadable from None
    SECRETS.put(position._replace(revision=revision), (service, key), value)  # the revision resolved
    return value
