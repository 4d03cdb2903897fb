"""Resolution through the database: one consistent snapshot of a context's layers, resolved by the
pure resolver, cached in the shared cache by (epoch, revision, context). Secrets stay sealed here;
opening them for a caller is a write (services.config_reveal, audited)."""

import hashlib
import logging
import pickle
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from .. import crypto
from ..diff import MASK
from ..exceptions import InvalidInput, NotFound
from ..memory import PositionMemo
from ..models import Layer, Level, RevisionMark
from ..resolver import LayerSnapshot, Provenance, Resolution, compose, layer_restrict, resolve, restrict
from ..state import Position, registry_position
from ..validation import NAME_PATTERNS
from .people import CARRIED, people_overlays
from .position import consistent_read
from .snapshots import Sealed, defaults_at, snapshots_at

logger = logging.getLogger(__name__)

CACHE_SECONDS = 3600  # entries are keyed by revision, so expiry only bounds memory


@dataclass(frozen=True)
class ResolvedConfig:
    revision: int
    context: dict[str, str]
    values: dict[str, Any]
    secrets: frozenset[str]
    provenance: dict[str, Provenance] = field(default_factory=dict)

    def as_dict(self, *, explain: bool = False) -> dict[str, Any]:
        """The wire form shared by the API and resolve_config."""
        answer: dict[str, Any] = {
            "revision": self.revision,
            "context": self.context,
            "values": self.values,
            "secrets": sorted(self.secrets),  # which to keep encrypted (clients' last-known-good files)
        }
        if explain:
            answer["provenance"] = {key: provenance_as_dict(p) for key, p in self.provenance.items()}
        return answer


def context_of(environment: str, service: str, user: str | None) -> dict[str, str]:
    return {"environment": environment, "service": service, **({"user": user} if user is not None else {})}


def context_label(context: dict[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in context.items())


def _check_name(label: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERNS[Level.SERVICE].match(value):
        raise InvalidInput(
            "invalid context", {label: f"{value!r} is not a valid {label} name (lowercase letters, digits, - and _)"}
        )
    return value


# The part of a context every user shares (defaults → global → environment → service), resolved once
# per (environment, service, revision): what a revision resolved to never changes.
SHARED_PARTS: PositionMemo[tuple[str, str, int], Resolution] = PositionMemo(
    "shared resolutions", 256, lambda position: position.epoch
)


def _shared_part(environment: str, service: str, position: Position) -> Resolution:
    """Inside consistent_read(), at `position` (read inside it, or a past revision of it)."""
    shared = SHARED_PARTS.get(position, (environment, service, position.revision))
    if shared is None:
        shared = resolve(_shared_snapshots(environment, service, position.revision))
        SHARED_PARTS.put(position, (environment, service, position.revision), shared)
    return shared


def _shared_snapshots(environment: str, service: str, revision: int) -> list[LayerSnapshot]:
    """Defaults, global, environment and service layers at `revision`, lowest first."""
    found = {
        (layer.level, layer.name): layer
        for layer in Layer.objects.filter(
            Q(level=Level.GLOBAL) | Q(level=Level.ENVIRONMENT, name=environment) | Q(level=Level.SERVICE, name=service)
        )
    }
    wanted = [(Level.GLOBAL, ""), (Level.ENVIRONMENT, environment), (Level.SERVICE, service)]
    layers = [found[key] for key in wanted if key in found]
    return [defaults_at(revision), *snapshots_at(layers, revision)]


# The layers of a service's own view at one revision, by (environment, service, revision).
SHARED_LAYERS: PositionMemo[tuple[str, str, int], list[LayerSnapshot]] = PositionMemo(
    "shared layers", 256, lambda position: position.epoch
)


def shared_layers(
    environment: str, service: str, position: Position, revision: int | None = None
) -> tuple[int, list[LayerSnapshot]]:
    """The revision and the layers of a service's own view (defaults, global, environment, service;
    lowest first; secrets sealed) at `position`, or as they were at a past `revision`, read
    consistently and kept: for protocols that show each layer (Spring's property sources)."""
    _check_name("environment", environment)
    _check_name("service", service)
    revision = position.revision if revision is None else revision_check(revision, position)
    layers = SHARED_LAYERS.get(position, (environment, service, revision))
    if layers is None:
        with consistent_read():
            layers = _shared_snapshots(environment, service, revision)
        SHARED_LAYERS.put(position, (environment, service, revision), layers)
    return revision, layers


def _resolution(
    environment: str, service: str, user: str | None, revision: int | None = None
) -> tuple[int, Resolution]:
    """The revision and the resolution (secrets still sealed) of one context, read consistently, now
    or at a past `revision`: the shared part (once per revision) composed with the user's overlay."""
    _check_name("environment", environment)
    _check_name("service", service)
    with consistent_read():
        position = registry_position()
        if revision is not None:
            position = Position(position.epoch, revision, position.token_generation)
        shared = _shared_part(environment, service, position)
        if user is None:
            return position.revision, shared
        person = people_overlays([user], position.revision).get(user)
        if person is None:
            raise NotFound(f"user {user!r} does not exist")
    return position.revision, compose(shared, person.overlays)


def contexts_resolve(
    environment: str, service: str, usernames: Collection[str | None], prefix: str | tuple[str, ...] = ""
) -> tuple[Position, dict[str | None, tuple[bool, Resolution]]]:
    """Many users' resolutions (only the keys that start with `prefix`) at one position, with one
    read of the shared part and one batched read of their overlays: what a publish costs a process
    with thousands of connected users. Returns the position and {username: (active, resolution)}
    for the users that exist (None among `usernames`: the service's own, without a user)."""
    _check_name("environment", environment)
    _check_name("service", service)
    with consistent_read():
        position = registry_position()
        shared = restrict(_shared_part(environment, service, position), prefix)
        people = CARRIED.people([name for name in usernames if name is not None], position)
    restricted: dict[int, LayerSnapshot] = {}  # a group's layer is in many overlays: restricted once

    def layer_of(layer: LayerSnapshot) -> LayerSnapshot:
        found = restricted.get(id(layer))
        if found is None:
            found = restricted[id(layer)] = layer_restrict(layer, prefix)
        return found

    resolved: dict[str | None, tuple[bool, Resolution]] = {
        username: (person.active, compose(shared, [layer_of(layer) for layer in person.overlays]))
        for username, person in people.items()
    }
    if None in usernames:
        resolved[None] = (True, shared)
    return position, resolved


def masked(revision: int, context: dict[str, str], resolution: Resolution) -> ResolvedConfig:
    """A resolution as callers without the reveal right see it: every secret masked."""
    values = dict(resolution.values)
    for key in resolution.secrets:
        values[key] = MASK
    return ResolvedConfig(revision, context, values, resolution.secrets, resolution.provenance)


def revision_check(revision: Any, position: Position) -> int:
    """`revision` if the registry has been there (SPEC §8), else InvalidInput saying why."""
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
        raise InvalidInput("invalid revision", {"revision": "must be a whole number ≥ 1 (the first revision is 1)"})
    if revision > position.revision:
        raise InvalidInput(
            "invalid revision",
            {"revision": f"revision {revision} is in the future: the registry is at revision {position.revision}"},
        )
    return revision


def revision_at(moment: datetime) -> int:
    """The last revision made at or before `moment` (an aware datetime), else InvalidInput."""
    if moment > timezone.now():
        raise InvalidInput("invalid time", {"at": f"{moment.isoformat()} is in the future"})
    mark = RevisionMark.objects.filter(at__lte=moment).order_by("-revision").first()
    if mark is None:
        raise InvalidInput("invalid time", {"at": f"{moment.isoformat()} is before the registry's first revision"})
    return mark.revision


def resolution_read(
    environment: str,
    service: str,
    user: str | None,
    max_age: float = 0.0,
    position: Position | None = None,
    revision: int | None = None,
) -> tuple[int, Resolution]:
    """The revision and resolution (secrets sealed) of a context, now or at a past `revision`,
    through the shared cache keyed by (epoch, revision, context): a publish moves the revision, and
    what a revision resolved to never changes, so nothing needs invalidating."""
    _check_name("environment", environment)
    _check_name("service", service)
    if user is not None and not (isinstance(user, str) and NAME_PATTERNS[Level.USER].match(user)):
        raise InvalidInput("invalid context", {"user": f"{user!r} is not a valid username"})
    position = position or registry_position(max_age)
    epoch = position.epoch
    past = revision is not None
    revision = revision_check(revision, position) if past else position.revision
    cached = cache.get(shared_cache_key("resolution", epoch, revision, environment, service, user))
    if cached is not None:
        return cached
    revision, resolution = _resolution(environment, service, user, revision if past else None)
    shared_cache_set(
        shared_cache_key("resolution", epoch, revision, environment, service, user), (revision, resolution)
    )
    return revision, resolution


def shared_cache_set(key: str, value: Any) -> None:
    """Remember `value` in the shared cache; a value the cache cannot take is only not remembered
    (answers never depend on the cache)."""
    try:
        cache.set(key, value, CACHE_SECONDS)
    except (RecursionError, pickle.PicklingError, TypeError, ValueError) as error:
        logger.warning("a resolution was not cached (%s): it is answered all the same", type(error).__name__)


def shared_cache_key(kind: str, *parts: Any) -> str:
    return f"registry:{kind}:" + hashlib.sha256(repr(parts).encode()).hexdigest()


def config_resolve(
    *,
    environment: str,
    service: str,
    user: str | None,
    max_age: float = 0.0,
    position: Position | None = None,
    revision: int | None = None,
) -> ResolvedConfig:
    """Resolve (environment, service, user) at one revision: defaults → global → environment →
    service → the user's groups by priority → user. `user=None` stops at the service level.

    Secrets are masked (services.config_reveal opens them, audited). At `position` if given (or
    later: a newer revision read meanwhile); else `max_age` lets a hot path use the position this
    process saw at most that many seconds ago (see registry_position).
    `revision`: what it resolved to at that past revision, exactly (SPEC §8).
    Raises NotFound for an unknown user, InvalidInput for bad names or a revision never reached.
    """
    revision, resolution = resolution_read(environment, service, user, max_age, position, revision)
    return masked(revision, context_of(environment, service, user), resolution)


# Masked resolutions by (environment, service, user, revision) at one (epoch, revision): what the
# drop-in protocols read on every request (the resolve endpoint keeps its bytes: answers.ANSWERS).
RESOLVED: PositionMemo[tuple, ResolvedConfig] = PositionMemo("masked resolutions", 512, lambda position: position[:2])


def config_view(
    *, environment: str, service: str, user: str | None, position: Position, revision: int | None = None
) -> ResolvedConfig:
    """config_resolve() at `position` (or a past `revision`), kept in this process: warm, a look-up."""
    request = (environment, service, user, revision)
    known = RESOLVED.get(position, request)
    if known is None:
        context = {"environment": environment, "service": service, "user": user}
        known = config_resolve(**context, position=position, revision=revision)
        if revision is None:  # read at a later revision than `position`: kept under the one it was read at
            position = Position(position.epoch, known.revision, position.token_generation)
        RESOLVED.put(position, request, known)
    return known


def sealed_open(sealed: Sealed) -> Any:
    return crypto.decrypt(sealed.ciphertext, place=sealed.place, version=sealed.version)


def service_resolution(*, environment: str, service: str, max_age: float = 0.0) -> tuple[int, Resolution]:
    """For the security accessor only: a service's own config, secrets sealed, nothing audited."""
    return resolution_read(environment, service, None, max_age)


def provenance_as_dict(provenance: Provenance) -> dict[str, Any]:
    return {
        "layer": provenance.layer,
        "version": provenance.version,
        "overrides": [{"layer": o.layer, "version": o.version} for o in provenance.overrides],
    }
