"""Reads of the registry: one consistent snapshot per resolution, versions, diffs, tokens."""

import hashlib
import json
import logging
import pickle
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from . import crypto
from .audit import Actor, audit_record
from .diff import MASK, Change, EntryState, entries_diff
from .exceptions import InvalidInput, NotFound
from .models import Entry, KeyDefinition, Layer, LayerVersion, Level, ServiceToken
from .resolver import LayerSnapshot, Provenance, Resolution, resolve
from .services import token_hash
from .state import (  # noqa: F401  (the position's readers, re-exported for the callers of selectors)
    Position,
    committed_position_publish,
    database_position,
    position_observed,
    registry_position,
    registry_position_known,
    registry_revision,
    state_clear,
)
from .validation import NAME_PATTERNS, SECURITY_KEYS, parse_layer_ref

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


@contextmanager
def consistent_read() -> Iterator[None]:
    """On PostgreSQL, one REPEATABLE READ snapshot for every query inside. Elsewhere (and inside a
    caller's transaction) the revision filter of _snapshots still keeps versions consistent."""
    if connection.in_atomic_block or connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def process_caches_clear() -> None:
    """Forget every position, token and answer this process holds (tests: a new database)."""
    state_clear()
    _local_bodies.clear()
    _local_tokens.clear()


def layer_get(ref: str) -> Layer:
    level, name = parse_layer_ref(ref)
    try:
        return Layer.objects.get(level=level, name=name)
    except Layer.DoesNotExist:
        raise NotFound(f"layer {ref} does not exist") from None


def _check_name(label: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERNS[Level.SERVICE].match(value):
        raise InvalidInput(
            "invalid context", {label: f"{value!r} is not a valid {label} name (lowercase letters, digits, - and _)"}
        )
    return value


def _snapshots(layers: Sequence[Layer], revision: int) -> list[LayerSnapshot]:
    """Each layer's entries as of `revision`, in the order given (lowest first)."""
    at_revision = LayerVersion.objects.filter(layer=OuterRef("pk"), revision__lte=revision).order_by("-number")
    version_ids = dict(
        Layer.objects.filter(pk__in=[layer.pk for layer in layers])
        .annotate(version_id=Subquery(at_revision.values("pk")[:1]))
        .values_list("pk", "version_id")
    )
    rows = Entry.objects.filter(version_id__in=[v for v in version_ids.values() if v]).values_list(
        "version_id", "version__number", "key", "value", "ciphertext", "secret"
    )
    by_version: dict[int, tuple[int, dict[str, Any], set[str]]] = {}
    for version_id, number, key, value, ciphertext, secret in rows:
        _, entries, secrets = by_version.setdefault(version_id, (number, {}, set()))
        entries[key] = value
        if secret:
            secrets.add(key)
            entries[key] = (number, ciphertext)
    snapshots = []
    for layer in layers:
        number, entries, secrets = by_version.get(version_ids.get(layer.pk), (None, {}, set()))
        for key in secrets:
            version, ciphertext = entries[key]
            entries[key] = Sealed(crypto.Place(layer.ref, key), version, ciphertext)
        snapshots.append(LayerSnapshot(layer.ref, number, entries, frozenset(secrets)))
    return snapshots


def _defaults() -> LayerSnapshot:
    defaults = KeyDefinition.objects.filter(has_default=True).values_list("key", "default")
    return LayerSnapshot(DEFAULTS_REF, None, dict(defaults))


def _resolution(environment: str, service: str, user: str | None) -> tuple[int, Resolution]:
    """The revision and the resolution (secrets still sealed) of one context, read consistently."""
    _check_name("environment", environment)
    _check_name("service", service)
    wanted = [(Level.GLOBAL, ""), (Level.ENVIRONMENT, environment), (Level.SERVICE, service)]
    with consistent_read():
        revision = registry_revision()
        found = {
            (layer.level, layer.name): layer
            for layer in Layer.objects.filter(
                Q(level=Level.GLOBAL)
                | Q(level=Level.ENVIRONMENT, name=environment)
                | Q(level=Level.SERVICE, name=service)
            )
        }
        layers = [found[key] for key in wanted if key in found]
        if user is not None:
            account = get_user_model().objects.filter(username=user).first()
            if account is None:
                raise NotFound(f"user {user!r} does not exist")
            group_names = list(account.groups.values_list("name", flat=True))
            groups = Layer.objects.filter(level=Level.GROUP, name__in=group_names).order_by("priority", "name")
            layers += [*groups, *Layer.objects.filter(level=Level.USER, name=user)]
        snapshots = [_defaults(), *_snapshots(layers, revision)]
    return revision, resolve(snapshots)


def _cached_resolution(
    environment: str, service: str, user: str | None, max_age: float = 0.0
) -> tuple[int, Resolution]:
    """_resolution through the shared cache, keyed by (epoch, revision, context): a publish moves
    the revision, so every process sees it at once and nothing needs invalidating."""
    _check_name("environment", environment)
    _check_name("service", service)
    if user is not None and not (isinstance(user, str) and NAME_PATTERNS[Level.USER].match(user)):
        raise InvalidInput("invalid context", {"user": f"{user!r} is not a valid username"})
    epoch, revision, _ = registry_position(max_age)
    cached = cache.get(_cache_key("resolution", epoch, revision, environment, service, user))
    if cached is not None:
        return cached
    revision, resolution = _resolution(environment, service, user)
    _cache_set(_cache_key("resolution", epoch, revision, environment, service, user), (revision, resolution))
    return revision, resolution


def _cache_set(key: str, value: Any) -> None:
    """Remember `value` in the shared cache; a value the cache cannot take is only not remembered
    (answers never depend on the cache)."""
    try:
        cache.set(key, value, CACHE_SECONDS)
    except (RecursionError, pickle.PicklingError, TypeError, ValueError) as error:
        logger.warning("a resolution was not cached (%s): it is answered all the same", type(error).__name__)


def _cache_key(kind: str, *parts: Any) -> str:
    return f"registry:{kind}:" + hashlib.sha256(repr(parts).encode()).hexdigest()


def config_resolve(
    *,
    environment: str,
    service: str,
    user: str | None,
    reveal_secrets: bool = False,
    actor: Actor | None = None,
    max_age: float = 0.0,
) -> ResolvedConfig:
    """Resolve (environment, service, user) at one revision: defaults → global → environment →
    service → the user's groups by priority → user. `user=None` stops at the service level.

    Secrets are masked unless `reveal_secrets`; a reveal needs an `actor` and is audited.
    `max_age` lets a hot path use the position this process saw at most that many seconds ago
    (see registry_position). Raises NotFound for an unknown user, InvalidInput for bad names.
    """
    if reveal_secrets and actor is None:
        raise ValueError("revealing secrets needs an actor to audit")
    revision, resolution = _cached_resolution(environment, service, user, max_age)
    context = {"environment": environment, "service": service}
    if user is not None:
        context["user"] = user
    values = dict(resolution.values)
    revealed = sorted(resolution.secrets - SECURITY_KEYS) if reveal_secrets else []
    for key in resolution.secrets:
        values[key] = MASK
    for key in revealed:  # the registry's own security configuration is never revealed (SPEC §12)
        values[key] = sealed_open(resolution.values[key])
    if revealed:
        with transaction.atomic():
            audit_record(
                actor=actor,
                action="secret.reveal",
                target=_context_label(context),
                changes={"keys": revealed, "revision": revision},
            )
    return ResolvedConfig(revision, context, values, resolution.secrets, resolution.provenance)


class _LocalCache:
    """A small LRU in process memory. Keys carry the revision, so entries never go stale: old
    ones just stop being asked for and fall out."""

    def __init__(self, size: int):
        self._size, self._entries, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_local_bodies = _LocalCache(512)
_local_tokens: dict[str, tuple[tuple[str, int], ServiceToken]] = {}


def resolve_etag(*, epoch: str, revision: int, context: dict[str, str], explain: bool, revealed: bool) -> str:
    """Strong ETag of a resolve answer: the same revision and request give the same bytes."""
    digest = hashlib.sha256(repr((epoch, sorted(context.items()), explain, revealed)).encode()).hexdigest()
    return f'"{revision}-{digest[:20]}"'


def resolve_answer(
    *,
    environment: str,
    service: str,
    user: str | None,
    explain: bool,
    reveal_secrets: bool,
    actor: Actor | None,
    position: Position | None = None,
) -> tuple[str, bytes]:
    """(ETag, JSON body) of a resolve. Masked answers are kept as bytes by revision, in this
    process and in the shared cache, so a warm resolve costs the position read (which the caller
    may already have made this request) and a dictionary look-up, whatever the number of keys."""
    context = {"environment": environment, "service": service, **({"user": user} if user is not None else {})}
    epoch, revision, _ = position or registry_position()
    etag = resolve_etag(epoch=epoch, revision=revision, context=context, explain=explain, revealed=reveal_secrets)
    if not reveal_secrets:
        body = _local_bodies.get(etag)
        if body is None:
            body = cache.get(_cache_key("body", etag))
        if body is not None:
            _local_bodies.put(etag, body)
            return etag, body
    resolved = config_resolve(
        environment=environment, service=service, user=user, reveal_secrets=reveal_secrets, actor=actor
    )
    etag = resolve_etag(
        epoch=epoch, revision=resolved.revision, context=context, explain=explain, revealed=reveal_secrets
    )
    body = json.dumps(resolved.as_dict(explain=explain), separators=(",", ":")).encode()
    if not reveal_secrets:
        _cache_set(_cache_key("body", etag), body)
        _local_bodies.put(etag, body)
    return etag, body


def sealed_open(sealed: Sealed) -> Any:
    return crypto.decrypt(sealed.ciphertext, place=sealed.place, version=sealed.version)


def service_resolution(*, environment: str, service: str, max_age: float = 0.0) -> tuple[int, Resolution]:
    """For the security accessor only: a service's own config, secrets sealed, nothing audited."""
    return _cached_resolution(environment, service, None, max_age)


def _context_label(context: dict[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in context.items())


def provenance_as_dict(provenance: Provenance) -> dict[str, Any]:
    return {
        "layer": provenance.layer,
        "version": provenance.version,
        "overrides": [{"layer": o.layer, "version": o.version} for o in provenance.overrides],
    }


# Versions -----------------------------------------------------------------------------------


def version_get(layer: Layer, number: int) -> LayerVersion:
    version = LayerVersion.objects.filter(layer=layer, number=number).first()
    if version is None:
        raise NotFound(f"layer {layer.ref} has no version {number} (current version: {layer.current_version})")
    return version


def version_states(layer: Layer, number: int, *, sealed: Collection[str] = ()) -> dict[str, EntryState]:
    """Entries of a version with secrets decrypted (but those named in `sealed`, left as their
    ciphertext): for diffs and reveals, never for display."""
    if number == 0:
        return {}
    version_get(layer, number)
    states = {}
    for entry in Entry.objects.filter(version__layer=layer, version__number=number):
        value = entry.value
        if entry.secret and entry.key in sealed:
            value = entry.ciphertext
        elif entry.secret:
            value = crypto.decrypt(entry.ciphertext, place=crypto.Place(layer.ref, entry.key), version=number)
        states[entry.key] = EntryState(value, entry.secret)
    return states


def version_entries(
    layer: Layer, number: int, *, reveal_secrets: bool = False, actor: Actor | None = None
) -> tuple[dict[str, Any], list[str]]:
    """(entries, secret keys) of a version; secrets masked, or decrypted and the reveal audited."""
    if number == 0:
        return {}, []
    if not reveal_secrets:
        entries, secrets = {}, []
        for entry in Entry.objects.filter(version__layer=layer, version__number=number):
            entries[entry.key] = MASK if entry.secret else entry.value
            if entry.secret:
                secrets.append(entry.key)
        return entries, secrets
    if actor is None:
        raise ValueError("revealing secrets needs an actor to audit")
    states = version_states(layer, number, sealed=SECURITY_KEYS)
    secrets = sorted(key for key, state in states.items() if state.secret)
    revealed = [key for key in secrets if key not in SECURITY_KEYS]
    if revealed:
        with transaction.atomic():
            audit_record(
                actor=actor, action="secret.reveal", target=layer.ref, changes={"keys": revealed, "version": number}
            )
    return {
        key: MASK if key in SECURITY_KEYS and state.secret else state.value for key, state in states.items()
    }, secrets


def version_diff(*, layer: Layer, from_number: int, to_number: int) -> list[Change]:
    """Changes from one version to another (0 = empty). Show them with Change.public()."""
    return entries_diff(version_states(layer, from_number), version_states(layer, to_number))


# Tokens -------------------------------------------------------------------------------------


class TokenRejected(Exception):
    """The presented token is unknown, expired or revoked; the message says which."""


def token_authenticate(raw: str, position: Position | None = None) -> ServiceToken:
    """The token named by `raw`, if valid now. Tokens are kept in process memory while the
    registry's token generation (read with the position) says that no token has changed."""
    if not raw:
        raise TokenRejected("invalid service token")
    digest = token_hash(raw)
    position = position or registry_position()
    generation = (position.epoch, position.token_generation)
    known = _local_tokens.get(digest)
    if known is not None and known[0] == generation:
        token = known[1]
    else:
        token = ServiceToken.objects.filter(token_hash=digest).first()
        if token is None:
            raise TokenRejected("invalid service token")
        if len(_local_tokens) > 10_000:  # bound memory against floods of distinct tokens
            _local_tokens.clear()
        _local_tokens[digest] = (generation, token)
    if token.revoked_at is not None:
        raise TokenRejected(f"service token {token.name!r} was revoked at {token.revoked_at.isoformat()}")
    if token.expires_at is not None and token.expires_at <= timezone.now():
        raise TokenRejected(f"service token {token.name!r} expired at {token.expires_at.isoformat()}")
    return token


def layer_reach(layer: Layer) -> tuple[int, str]:
    """How many (active) users a change to `layer` reaches, and who they are, in words."""
    users = get_user_model().objects.filter(is_active=True)
    if layer.level == Level.GROUP:
        return users.filter(groups__name=layer.name).count(), f"the members of group {layer.name}"
    if layer.level == Level.USER:
        return users.filter(username=layer.name).count(), f"user {layer.name}"
    where = {
        Level.GLOBAL: "in every environment and service",
        Level.ENVIRONMENT: f"in environment {layer.name}",
        Level.SERVICE: f"of service {layer.name}",
    }[layer.level]
    return users.count(), f"every user {where}"


def secret_reveal(*, layer: Layer, key: str, actor: Actor) -> Any:
    """The plaintext of one secret of the layer's current version, for a person allowed to see
    it; audited. Raises NotFound if the key is not a secret there."""
    entry = Entry.objects.filter(
        version__layer=layer, version__number=layer.current_version, key=key, secret=True
    ).first()
    if entry is None:
        raise NotFound(f"{key!r} is not a secret of layer {layer.ref} version {layer.current_version}")
    if key in SECURITY_KEYS:
        raise NotFound(
            f"{key} is the registry's own security configuration: it is never revealed "
            "(publish new keys instead of reading old ones)"
        )
    value = crypto.decrypt(entry.ciphertext, place=crypto.Place(layer.ref, key), version=layer.current_version)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="secret.reveal",
            target=layer.ref,
            changes={"keys": [key], "version": layer.current_version},
        )
    return value
