"""Resolution through the database: one consistent snapshot of a context's layers, resolved by the
pure resolver, cached in the shared cache by (epoch, revision, context). Secrets stay sealed here;
opening them for a caller is a write (services.config_reveal, audited)."""

import hashlib
import logging
import pickle
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from .. import crypto
from ..diff import MASK
from ..exceptions import InvalidInput, NotFound
from ..memory import PositionMemo
from ..models import (
    DefaultRecord,
    Entry,
    Layer,
    LayerVersion,
    Level,
    MembershipRecord,
    PriorityRecord,
    RevisionMark,
)
from ..resolver import LayerSnapshot, Provenance, Resolution, compose, layer_restrict, resolve, restrict
from ..state import Position, registry_position
from ..validation import NAME_PATTERNS
from .position import consistent_read

logger = logging.getLogger(__name__)

DEFAULTS_REF = "default"  # provenance of a value that comes from a key definition's default

CACHE_SECONDS = 3600  # entries are keyed by revision, so expiry only bounds memory


@dataclass(frozen=True)
class Sealed:
    """A secret as the resolver sees it: opaque, opened only if it wins and may be revealed."""

    place: crypto.Place
    version: int
    ciphertext: str


@dataclass(frozen=True)
class ResolvedConfig:
    revision: int
    context: dict[str, str]
    values: dict[str, Any]
    secrets: frozenset[str]
    provenance: dict[str, Provenance] = field(default_factory=dict)

    def as_dict(self, *, explain: bool = False) -> dict[str, Any]:
        """The wire form shared by the API and resolve_config."""
        answer: dict[str, Any] = {"revision": self.revision, "context": self.context, "values": self.values}
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


def _snapshots(layers: Sequence[Layer], revision: int) -> list[LayerSnapshot]:
    """Each layer's entries as of `revision`, in the order given (lowest first): one query for the
    version numbers, one for the entries valid at them."""
    at_revision = LayerVersion.objects.filter(layer=OuterRef("pk"), revision__lte=revision).order_by("-number")
    numbers = {
        pk: number
        for pk, number in Layer.objects.filter(pk__in=[layer.pk for layer in layers])
        .annotate(number=Subquery(at_revision.values("number")[:1]))
        .values_list("pk", "number")
        if number
    }
    return layer_snapshots(layers, numbers)


def layer_snapshots(layers: Sequence[Layer], numbers: dict[int, int]) -> list[LayerSnapshot]:
    """Snapshots of `layers`, each at its version in `numbers` ({layer id: number}; absent: empty),
    read in one query."""
    rows = Entry.objects.at_each(numbers).values_list("layer_id", "valid_from", "key", "value", "ciphertext", "secret")
    by_layer: dict[int, tuple[dict[str, Any], set[str]]] = {}
    for layer_id, written_in, key, value, ciphertext, secret in rows:
        entries, secrets = by_layer.setdefault(layer_id, ({}, set()))
        entries[key] = value
        if secret:
            secrets.add(key)
            entries[key] = (written_in, ciphertext)
    snapshots = []
    for layer in layers:
        entries, secrets = by_layer.get(layer.pk, ({}, set()))
        for key in secrets:
            written_in, ciphertext = entries[key]
            entries[key] = Sealed(crypto.Place(layer.ref, key), written_in, ciphertext)
        snapshots.append(LayerSnapshot(layer.ref, numbers.get(layer.pk), entries, frozenset(secrets)))
    return snapshots


def _defaults(revision: int) -> LayerSnapshot:
    """The key definitions' defaults as they were at `revision` (recorded by revision)."""
    return LayerSnapshot(DEFAULTS_REF, None, dict(DefaultRecord.objects.at(revision).values_list("key", "default")))


# The part of a context every user shares (defaults → global → environment → service), resolved once
# per (environment, service, revision): what a revision resolved to never changes.
SHARED_PARTS: PositionMemo[tuple[str, str, int], Resolution] = PositionMemo(
    "shared resolutions", 256, lambda position: position.epoch
)


def _shared_part(environment: str, service: str, position: Position) -> Resolution:
    """Inside consistent_read(), at `position` (read inside it, or a past revision of it)."""
    shared = SHARED_PARTS.get(position, (environment, service, position.revision))
    if shared is None:
        found = {
            (layer.level, layer.name): layer
            for layer in Layer.objects.filter(
                Q(level=Level.GLOBAL)
                | Q(level=Level.ENVIRONMENT, name=environment)
                | Q(level=Level.SERVICE, name=service)
            )
        }
        wanted = [(Level.GLOBAL, ""), (Level.ENVIRONMENT, environment), (Level.SERVICE, service)]
        layers = [found[key] for key in wanted if key in found]
        shared = resolve([_defaults(position.revision), *_snapshots(layers, position.revision)])
        SHARED_PARTS.put(position, (environment, service, position.revision), shared)
    return shared


@dataclass(frozen=True)
class Person:
    """What resolution knows of a user: whether the account is active, and their overlay (their
    groups' layers by priority, then their own layer) at one revision."""

    active: bool
    overlays: list[LayerSnapshot]


def people_overlays(usernames: Collection[str], revision: int) -> dict[str, Person]:
    """The overlays of many users at `revision`, in six queries whatever their number (accounts,
    memberships and group priorities as at `revision`, layers, versions, entries); users that do
    not exist are absent."""
    rows = get_user_model().objects.filter(username__in=list(usernames)).values_list("pk", "username", "is_active")
    accounts = {pk: (username, active) for pk, username, active in rows}
    if not accounts:
        return {}
    memberships: dict[int, list[str]] = {}
    held = MembershipRecord.objects.at(revision).filter(user_id__in=list(accounts))
    for user_id, group in held.values_list("user_id", "group__name"):
        memberships.setdefault(user_id, []).append(group)
    groups = {name for names in memberships.values() for name in names}
    names = [username for username, _ in accounts.values()]
    layers = list(
        Layer.objects.filter(Q(level=Level.GROUP, name__in=groups) | Q(level=Level.USER, name__in=names)).only(
            "level", "name", "priority"
        )
    )
    priorities = dict(
        PriorityRecord.objects.at(revision)
        .filter(layer_id__in=[layer.pk for layer in layers if layer.level == Level.GROUP])
        .values_list("layer_id", "priority")
    )
    snapshots = dict(zip([(layer.level, layer.name) for layer in layers], _snapshots(layers, revision), strict=True))
    group_rank = {  # lowest first, by priority as at `revision`
        layer.name: (priorities.get(layer.pk, layer.priority), layer.name)
        for layer in layers
        if layer.level == Level.GROUP
    }
    people = {}
    for user_id, (username, active) in accounts.items():
        groups_in = sorted((name for name in memberships.get(user_id, ()) if name in group_rank), key=group_rank.get)
        overlays = [snapshots[(Level.GROUP, name)] for name in groups_in]
        own = snapshots.get((Level.USER, username))
        people[username] = Person(active, [*overlays, *([own] if own else [])])
    return people


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
    environment: str, service: str, usernames: Collection[str | None], prefix: str = ""
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
        people = people_overlays([name for name in usernames if name is not None], position.revision)
    resolved: dict[str | None, tuple[bool, Resolution]] = {
        username: (person.active, compose(shared, [layer_restrict(layer, prefix) for layer in person.overlays]))
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
