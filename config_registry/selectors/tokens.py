"""Service tokens as requests present them: valid now, kept in memory per token generation."""

from django.utils import timezone

from ..crypto import token_hash
from ..memory import PositionMemo
from ..models import ServiceToken
from ..state import Position, registry_position

# Tokens at one (epoch, token generation): any change to any token moves the generation.
TOKENS: PositionMemo[str, ServiceToken] = PositionMemo(
    "service tokens", 10_000, depends_on=lambda position: (position[0], position[2])
)


class TokenRejected(Exception):
    """The presented token is unknown, expired or revoked; the message says which."""


def token_authenticate(raw: str, position: Position | None = None) -> ServiceToken:
    """The token named by `raw`, if valid at `position` (read now if not given)."""
    if not raw:
        raise TokenRejected("invalid service token")
    digest = token_hash(raw)
    position = position or registry_position()
    token = TOKENS.get(position, digest)
    if token is None:
        token = ServiceToken.objects.filter(token_hash=digest).first()
        if token is None:
            raise TokenRejected("invalid service token")
        TOKENS.put(position, digest, token)
    if token.revoked_at is not None:
        raise TokenRejected(f"service token {token.name!r} was revoked at {token.revoked_at.isoformat()}")
    if token.expires_at is not None and token.expires_at <= timezone.now():
        raise TokenRejected(f"service token {token.name!r} expired at {token.expires_at.isoformat()}")
    return token
