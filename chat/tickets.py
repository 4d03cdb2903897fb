"""Chat tickets: short-lived, single-use JWTs (HS256) signed with the registry's chat.signing_keys.

The keys come from config_registry.security and nowhere else. The first key signs; every key
verifies, chosen by the ticket's `kid` (a fingerprint, never the key). The algorithm is pinned.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from config_registry.exceptions import SecurityConfigMissing
from config_registry.security import security_secret

SIGNING_KEYS = "chat.signing_keys"
AUDIENCE = "chat"
ALGORITHM = "HS256"
LIFETIME_SECONDS = 60


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
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and len(k) >= 32 for k in keys):
        raise SecurityConfigMissing(key=SIGNING_KEYS, environment="(this deployment)", service="chat",
                                    reason="must be a non-empty list of keys of at least 32 characters")
    return keys


def ticket_issue(*, username: str) -> Ticket:
    """A ticket for `username`, signed with the first signing key."""
    key = signing_keys()[0]
    now = timezone.now()
    claims = {"sub": username, "aud": AUDIENCE, "iat": now, "nbf": now,
              "exp": now + timedelta(seconds=LIFETIME_SECONDS), "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})
    return Ticket(token, LIFETIME_SECONDS)


def _active_user(username: str) -> ChatUser | None:
    # Plain SQL: this runs on every chat handshake, where compiling an ORM query would cost more
    # than verifying the ticket itself.
    table = get_user_model()._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE username = %s AND is_active = %s", [username, True])
        row = cursor.fetchone()
    return ChatUser(row[0], username) if row else None


def ticket_verify(token: str) -> ChatUser:
    """The active user a ticket names, consuming the ticket. Raises TicketInvalid."""
    if not token:
        raise TicketInvalid("no ticket: connect with ?ticket=<ticket from POST /api/v1/chat/ticket>")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TicketInvalid("the ticket is not a JWT") from None
    kid = header.get("kid")
    key = {key_id(k): k for k in signing_keys(KEYS_MAX_AGE_SECONDS)}.get(kid)
    if key is None:  # perhaps a key published in the last moment: look at the registry itself
        key = {key_id(k): k for k in signing_keys()}.get(kid)
    if key is None:
        raise TicketInvalid("the ticket was signed with a key that is not (or no longer) a chat signing key")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE,
                            options={"require": ["exp", "sub", "aud", "jti"]})
    except jwt.ExpiredSignatureError:
        raise TicketInvalid("the ticket has expired: fetch a new one") from None
    except jwt.PyJWTError as error:
        raise TicketInvalid(f"the ticket is invalid ({type(error).__name__})") from None
    remaining = int(claims["exp"] - timezone.now().timestamp()) + 1
    # Single use: the first to record the jti wins; the record lasts as long as the ticket could.
    if not cache.add(f"chat:ticket:{claims['jti']}", 1, timeout=max(remaining, 1)):
        raise TicketInvalid("the ticket was already used: fetch a new one")
    user = _active_user(claims["sub"])
    if user is None:
        raise TicketInvalid("the ticket's user does not exist or is inactive")
    return user
