"""Chat tickets: short-lived, single-use JWTs (HS256) signed with the registry's chat.signing_keys.

The keys come from config_registry.security and nowhere else. The first key signs; every key
verifies, chosen by the ticket's `kid` (a fingerprint, never the key). The algorithm is pinned.
"""

import functools
import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import BaseCache, caches
from django.core.signals import setting_changed
from django.db import connection
from django.dispatch import receiver
from django.utils import timezone
from django.utils.module_loading import import_string

from config_registry.exceptions import SecurityConfigMissing
from config_registry.memory import PositionMemo
from config_registry.models import Level
from config_registry.security import security_secret, security_secret_known
from config_registry.selectors import Position, registry_position
from config_registry.validation import NAME_PATTERNS

SIGNING_KEYS = "chat.signing_keys"
TICKET_USER = NAME_PATTERNS[Level.USER]
AUDIENCE = "chat"
ALGORITHM = "HS256"
LIFETIME_SECONDS = 60
TICKETS_CACHE = "tickets"  # single-use records: a cache of their own, which nothing evicts (checks.E003)


class TicketInvalid(Exception):
    """Missing, malformed, forged, expired or reused ticket; the message says which (not the ticket)."""


@dataclass(frozen=True, slots=True)
class ChatUser:
    """Who a verified ticket names: all a connection needs of the user."""

    pk: int
    username: str

    def __str__(self) -> str:
        return self.username


@dataclass(frozen=True)
class Ticket:
    token: str
    expires_in: int


def key_id(key: str) -> str:
    """The `kid` of a signing key: a fingerprint that reveals nothing of the key."""
    return hashlib.sha256(("chat-ticket-kid:" + key).encode()).hexdigest()[:16]


# Verifying may use keys as this process last saw them, up to this old: a handshake then costs no
# database read. A ticket naming a key not among them makes it look again (a key just added).
KEYS_MAX_AGE_SECONDS = 1.0


def signing_keys(max_age: float = 0.0) -> list[str]:
    """The current keys from the registry. Raises SecurityConfigMissing, RegistryUnavailable."""
    keys = security_secret(SIGNING_KEYS, service="chat", max_age=max_age)
    if not _usable_keys(keys):
        raise SecurityConfigMissing(
            key=SIGNING_KEYS,
            environment="(this deployment)",
            service="chat",
            reason="must be a non-empty list of keys of at least 32 characters",
        )
    return keys


def _usable_keys(keys) -> bool:
    return isinstance(keys, list) and bool(keys) and all(isinstance(k, str) and len(k) >= 32 for k in keys)


def ticket_issue(*, username: str) -> Ticket:
    """A ticket for `username`, signed with the first signing key."""
    key = signing_keys()[0]
    now = timezone.now()
    claims = {
        "sub": username,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=LIFETIME_SECONDS),
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})
    return Ticket(token, LIFETIME_SECONDS)


# Users seen active at one position (saving is_active moves the revision: config_registry.signals).
ACTIVE_USERS: PositionMemo[str, ChatUser] = PositionMemo("active chat users", 100_000)


def _active_user(username: str, position: Position) -> ChatUser | None:
    # Plain SQL: this runs on every chat handshake, where compiling an ORM query would cost more
    # than verifying the ticket itself.
    table = connection.ops.quote_name(get_user_model()._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE username = %s AND is_active = %s", [username, True])
        row = cursor.fetchone()
    user = ChatUser(row[0], username) if row else None
    if user is not None:
        ACTIVE_USERS.put(position, username, user)
    return user


def active_user_known(username: str, position: Position) -> ChatUser | None:
    """The user, if this process saw them active at `position` (no I/O)."""
    return ACTIVE_USERS.get(position, username)


class UnknownKey(TicketInvalid):
    """The ticket names a key not among those given (perhaps one published a moment ago)."""


def ticket_claims(token: str, keys: list[str]) -> dict:
    """The claims of a ticket signed with one of `keys`, checked (signature, algorithm, audience,
    expiry), not yet consumed. Raises TicketInvalid (UnknownKey for a key not among `keys`)."""
    if not token:
        raise TicketInvalid("no ticket: connect with ?ticket=<ticket from POST /api/v1/chat/ticket>")
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise TicketInvalid("the ticket is not a JWT") from None
    kid = header.get("kid")
    key = {key_id(k): k for k in keys}.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise UnknownKey("the ticket was signed with a key that is not (or no longer) a chat signing key")
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, options={"require": ["exp", "sub", "aud", "jti"]}
        )
    except jwt.ExpiredSignatureError:
        raise TicketInvalid("the ticket has expired: fetch a new one") from None
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as error:
        raise TicketInvalid(f"the ticket is invalid ({type(error).__name__})") from None
    # Signed by us, but shaped by hand? Claims of the wrong type are refused, not a server error.
    if not (
        isinstance(claims["exp"], (int, float))
        and not isinstance(claims["exp"], bool)
        and isinstance(claims["sub"], str)
        and isinstance(claims["jti"], str)
        and 0 < len(claims["jti"]) <= 64
        and TICKET_USER.match(claims["sub"])
    ):
        raise TicketInvalid("the ticket is invalid (claims of the wrong type)")
    return claims


def _consumed_key(claims: dict) -> tuple[str, int]:
    remaining = int(claims["exp"] - timezone.now().timestamp()) + 1
    return f"chat:ticket:{claims['jti']}", max(remaining, 1)


def ticket_consume(claims: dict) -> None:
    """Single use: the first to record the jti wins; the record lasts as long as the ticket could.
    Raises TicketInvalid for a ticket used before, CacheUnavailable without the shared cache."""
    key, timeout = _consumed_key(claims)
    if not caches[TICKETS_CACHE].add(key, 1, timeout=timeout):
        raise TicketInvalid("the ticket was already used: fetch a new one")


async def ticket_consume_async(claims: dict) -> None:
    """ticket_consume() on an event loop: Redis without a thread; the local-memory cache directly."""
    key, timeout = _consumed_key(claims)
    shared = _tickets_store()
    added = (
        await shared.add_async(key, 1, timeout) if hasattr(shared, "add_async") else shared.add(key, 1, timeout=timeout)
    )
    if not added:
        raise TicketInvalid("the ticket was already used: fetch a new one")


@functools.cache
def _tickets_store() -> BaseCache:
    """This process's one object of the tickets cache. Django builds a cache object per asynchronous
    context, that is, per connection (a sixth of a handshake's CPU on Redis); both backends used
    for tickets (LocMemCache, project.infra.redis_cache) are safe to share between threads and loops."""
    params = dict(settings.CACHES[TICKETS_CACHE])
    backend, location = params.pop("BACKEND"), params.pop("LOCATION", "")
    return import_string(backend)(location, params)


@receiver(setting_changed)
def _caches_changed(setting, **kwargs) -> None:
    if setting == "CACHES":
        _tickets_store.cache_clear()


def signing_keys_known(max_age: float) -> list[str] | None:
    """signing_keys(max_age) if this process has them in memory (no I/O), else None."""
    keys = security_secret_known(SIGNING_KEYS, service="chat", max_age=max_age)
    return keys if _usable_keys(keys) else None


def ticket_verify(token: str, position: Position | None = None) -> ChatUser:
    """The active user a ticket names (at `position`, read now if not given), consuming the
    ticket. Raises TicketInvalid."""
    try:
        claims = ticket_claims(token, signing_keys(KEYS_MAX_AGE_SECONDS))
    except UnknownKey:  # perhaps a key published in the last moment: look at the registry itself
        claims = ticket_claims(token, signing_keys())
    ticket_consume(claims)
    user = _active_user(claims["sub"], position or registry_position())
    if user is None:
        raise TicketInvalid("the ticket's user does not exist or is inactive")
    return user
