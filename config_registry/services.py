"""Writes of the registry. Each is atomic, moves the revision when resolution may change,
and writes its audit event in the same transaction: no event, no write.

Views, the admin and management commands all call these; none writes models directly.
"""

import json
import secrets as token_secrets
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from . import crypto
from .audit import Actor, audit_record, secret_fingerprint
from .diff import MASK, Change, EntryState, entries_diff
from .exceptions import (
    ApprovalRequired,
    InvalidInput,
    NotFound,
    PermissionRefused,
    SecretUndecryptable,
    VersionConflict,
)
from .limits import MAX_LAYER_BYTES, MAX_VALUE_BYTES, json_problem, text_problem
from .models import (
    DefaultRecord,
    Entry,
    KeyDefinition,
    Layer,
    LayerVersion,
    Level,
    MembershipRecord,
    PriorityRecord,
    RevisionMark,
    Scope,
    ServiceToken,
)
from .resolver import LayerSnapshot
from .selectors.resolution import ResolvedConfig, context_label, context_of, resolution_read, sealed_open
from .selectors.versions import version_states
from .state import locked_state
from .validation import (
    NAME_PATTERNS,
    SECURITY_KEYS,
    key_problem,
    parse_layer_ref,
    schema_problem,
    value_problem,
)

TOKEN_NAME_PATTERN = NAME_PATTERNS[Level.SERVICE]
_MISSING = object()
_UNREADABLE = "<unreadable secret>"


# The gate (SPEC §11) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Approved:
    """The change request being applied (config_registry.changes): the one key to a gated target."""

    target: str
    change_request: int | None
    approved_by: tuple[str, ...] = ()


_APPROVED: ContextVar[Approved | None] = ContextVar("config_registry_approved_change", default=None)


@contextmanager
def approved_change(approved: Approved) -> Iterator[None]:
    """Open the gate of `approved.target` for the writes inside (only changes.py applies requests)."""
    token = _APPROVED.set(approved)
    try:
        yield
    finally:
        _APPROVED.reset(token)


def _gate(target: str, required: int) -> None:
    """Every write to a layer or key definition passes here: a gated target changes only as its
    approved change request. The one enforcement, below every view, command and protocol."""
    approved = _APPROVED.get()
    if required and (approved is None or approved.target != target):
        raise ApprovalRequired(target=target, required=required)


def definition_required_approvals(key: str, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> int:
    """How many approvals a key definition change needs: a default reaches every context, so it is
    gated by every gated layer; a schema or secret-ness by the gated layers that hold the key."""
    old = before or {"schema": None, "secret": False, "default": None, "has_default": False}
    if (old["default"], old["has_default"]) != (after["default"], after["has_default"]):
        return max(
            Layer.objects.filter(required_approvals__gt=0).values_list("required_approvals", flat=True), default=0
        )
    if (old["schema"], old["secret"]) != (after["schema"], after["secret"]):
        holders = Entry.objects.filter(key=key, valid_to__isnull=True, layer__required_approvals__gt=0)
        return max(holders.values_list("layer__required_approvals", flat=True), default=0)
    return 0


@transaction.atomic
def revision_bump() -> int:
    """Move the global revision for a change that alters resolution without a layer version
    (group membership, group priority, key definition defaults)."""
    return _revision_next()


def _revision_next() -> int:
    """Move the global revision (locking the registry's state row until the commit) and note when."""
    state = locked_state()
    state.revision += 1
    state.save(update_fields=["revision"])
    RevisionMark.objects.update_or_create(revision=state.revision, defaults={"at": timezone.now()})
    return state.revision


def _history_close(records, revision: int) -> None:
    """End the current record(s) of a history (see models.MembershipRecord) at `revision`."""
    records.current().update(valid_to=revision)


@transaction.atomic
def memberships_record(*, added: Iterable[tuple[int, int]] = (), removed: Iterable[tuple[int, int]] = ()) -> int:
    """Users joined or left groups ((user id, group id) pairs): move the revision, so caches and
    live consumers see it, and record the change by revision, so the past resolves exactly."""
    revision = revision_bump()
    for user_id, group_id in removed:
        _history_close(MembershipRecord.objects.filter(user_id=user_id, group_id=group_id), revision)
    MembershipRecord.objects.bulk_create(
        [MembershipRecord(user_id=user_id, group_id=group_id, valid_from=revision) for user_id, group_id in added]
    )
    return revision


# Layers -------------------------------------------------------------------------------------


@transaction.atomic
def layer_create(
    *, ref: str, description: str = "", priority: int = 0, required_approvals: int = 0, actor: Actor
) -> Layer:
    """Create an empty layer (version 0). Group and user layers need the group or user to exist."""
    level, name = parse_layer_ref(ref)
    if level == Level.GROUP and not Group.objects.filter(name=name).exists():
        raise InvalidInput("cannot create layer", {"ref": f"there is no group named {name!r}"})
    if level == Level.USER and not get_user_model().objects.filter(username=name).exists():
        raise InvalidInput("cannot create layer", {"ref": f"there is no user named {name!r}"})
    if Layer.objects.filter(level=level, name=name).exists():
        raise InvalidInput("cannot create layer", {"ref": f"layer {ref} already exists"})
    _check_settings(priority, required_approvals)
    layer = Layer.objects.create(
        level=level, name=name, description=description, priority=priority, required_approvals=required_approvals
    )
    if level == Level.GROUP:  # from the start: before its first version the layer resolves to nothing
        PriorityRecord.objects.create(layer=layer, priority=priority, valid_from=0)
    audit_record(
        actor=actor,
        action="layer.create",
        target=layer.ref,
        changes={"description": description, "priority": priority, "required_approvals": required_approvals},
    )
    return layer


def layer_settings(layer: Layer) -> dict[str, Any]:
    return {
        "description": layer.description,
        "priority": layer.priority,
        "required_approvals": layer.required_approvals,
    }


def _check_settings(priority: Any, required_approvals: Any) -> None:
    errors = {}
    for label, value, low in (("priority", priority, -(2**31)), ("required_approvals", required_approvals, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= (2**31 - 1 if low else 10):
            errors[label] = "must be a whole number" + (" from 0 to 10" if not low else "")
    if errors:
        raise InvalidInput("invalid layer settings", errors)


@transaction.atomic
def layer_update(
    *, layer: Layer, description: str, priority: int, actor: Actor, required_approvals: int | None = None
) -> Layer:
    """Change a layer's description, (for groups) priority, or required approvals. Priority changes
    resolution and the approvals guard the layer: on a gated layer both need its approvals."""
    layer = Layer.objects.select_for_update().get(pk=layer.pk)
    required_approvals = layer.required_approvals if required_approvals is None else required_approvals
    _check_settings(priority, required_approvals)
    before = layer_settings(layer)
    after = {"description": description, "priority": priority, "required_approvals": required_approvals}
    if before == after:
        return layer
    if (before["priority"], before["required_approvals"]) != (priority, required_approvals):
        _gate(layer.ref, layer.required_approvals)
    layer.description, layer.priority, layer.required_approvals = description, priority, required_approvals
    layer.save(update_fields=["description", "priority", "required_approvals"])
    if before["priority"] != priority and layer.level == Level.GROUP:
        revision = revision_bump()
        _history_close(PriorityRecord.objects.filter(layer=layer), revision)
        PriorityRecord.objects.create(layer=layer, priority=priority, valid_from=revision)
    audit_record(
        actor=actor,
        action="layer.update",
        target=layer.ref,
        changes={k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]},
    )
    return layer


# Versions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    """An entry as a new version will write it: a plain value, a new secret's plaintext, or a
    secret's ciphertext sealed in version `sealed_in` (a rollback's; re-sealed for the new version)."""

    secret: bool
    value: Any = None
    ciphertext: str = ""
    sealed_in: int | None = None

    @classmethod
    def of(cls, entry: Entry) -> "_Stored":
        return cls(entry.secret, entry.value, entry.ciphertext, entry.valid_from if entry.secret else None)


def _sealed(layer: Layer, key: str, stored: _Stored, number: int) -> str:
    """The ciphertext of a secret entry bound to version `number` of `layer`."""
    place = crypto.Place(layer.ref, key)
    if not stored.ciphertext:
        return crypto.encrypt(stored.value, place=place, version=number)
    try:
        value = crypto.decrypt(stored.ciphertext, place=place, version=stored.sealed_in)
    except SecretUndecryptable:
        return stored.ciphertext  # unreadable stays unreadable (rotate_keys reports it); never dropped
    return crypto.encrypt(value, place=place, version=number)


def _require_security_right(keys: Iterable[str], actor: Actor) -> None:
    touched = sorted(set(keys) & SECURITY_KEYS)
    if touched and not actor.may_write_security:
        raise PermissionRefused(
            f"{', '.join(touched)} is the registry's own security configuration: changing it needs the "
            "security:write scope on a token without environment or service limits, or the admin "
            "permission 'Can change the registry's security configuration'"
        )


def _lock_at(layer: Layer, base_version: Any) -> Layer:
    if not isinstance(base_version, int) or isinstance(base_version, bool) or base_version < 0:
        raise InvalidInput(
            "invalid publish", {"base_version": "must be a whole number ≥ 0 (0 for a layer with no version yet)"}
        )
    locked = Layer.objects.select_for_update().get(pk=layer.pk)
    if locked.current_version != base_version:
        raise VersionConflict(layer=locked.ref, current=locked.current_version, base=base_version)
    return locked


def _stored_entries(layer: Layer, number: int, keys: Collection[str] | None = None) -> dict[str, Entry]:
    """The entries of version `number` (only `keys`, if given: what a publish touches)."""
    if number == 0:
        return {}
    rows = Entry.objects.at(layer.pk, number)
    if keys is not None:
        rows = rows.filter(key__in=list(keys))
    return {e.key: e for e in rows}


def _plain(layer: Layer, entry: Entry) -> EntryState:
    if not entry.secret:
        return EntryState(entry.value)
    place = crypto.Place(layer.ref, entry.key)
    return EntryState(crypto.decrypt(entry.ciphertext, place=place, version=entry.valid_from), secret=True)


def _plain_or_unreadable(layer: Layer, entry: Entry) -> EntryState:
    """Like _plain, but an unreadable old secret may still be replaced or unset."""
    try:
        return _plain(layer, entry)
    except SecretUndecryptable:
        return EntryState(_UNREADABLE, secret=True)


def _schema_errors(values: Mapping[str, Any], secret_keys: Collection[str]) -> dict[str, str]:
    definitions = KeyDefinition.objects.filter(key__in=list(values), schema__isnull=False)
    errors = {}
    for definition in definitions:
        problem = value_problem(
            values[definition.key], definition.schema, secret=definition.secret or definition.key in secret_keys
        )
        if problem:
            errors[definition.key] = problem
    return errors


def _audit_changes(changes: list[Change]) -> dict[str, Any]:
    """Before/after for plain keys; for secrets only keyed fingerprints."""
    recorded = {}
    for change in changes:
        if change.secret:
            recorded[change.key] = {
                "kind": change.kind,
                "secret": True,
                "before_hmac": secret_fingerprint(change.before) if change.kind != "added" else None,
                "after_hmac": secret_fingerprint(change.after) if change.kind != "removed" else None,
            }
        else:
            recorded[change.key] = change.public()
    return recorded


def _append_version(
    *,
    layer: Layer,
    written: Mapping[str, _Stored],
    replaced: Collection[Entry],
    changes: list[Change],
    actor: Actor,
    comment: str,
    action: str,
    rolled_back_from: int | None = None,
) -> LayerVersion:
    """Write the next version of `layer`: rows for the keys it sets (`written`), and the end of
    validity of the rows it replaces or removes (`replaced`). Every other entry carries on as it is:
    the cost is that of the change, not of the layer."""
    _gate(layer.ref, layer.required_approvals)
    if not changes:
        raise InvalidInput(
            f"nothing to publish: the change leaves layer {layer.ref} as it is at version {layer.current_version}"
        )
    _require_security_right((change.key for change in changes), actor)
    number = layer.current_version + 1
    rows = [
        Entry(
            layer=layer,
            valid_from=number,
            key=key,
            secret=stored.secret,
            value=None if stored.secret else stored.value,
            ciphertext=_sealed(layer, key, stored, number) if stored.secret else "",
        )
        for key, stored in sorted(written.items())
    ]
    total = layer.current_bytes - sum(entry.size() for entry in replaced) + sum(row.size() for row in rows)
    if total > MAX_LAYER_BYTES:
        raise InvalidInput(
            f"layer {layer.ref} would hold {total} bytes of entries; the limit for a layer "
            f"is {MAX_LAYER_BYTES} (values as compact JSON, secrets as ciphertext): split it, or move keys "
            "to other layers"
        )
    revision = _revision_next()
    now = timezone.now()
    approved = _APPROVED.get()
    version = LayerVersion.objects.create(
        layer=layer,
        number=number,
        revision=revision,
        author=actor.name,
        created_at=now,
        comment=comment,
        rolled_back_from=rolled_back_from,
        change_request=approved and approved.change_request,
        approved_by=list(approved.approved_by) if approved else [],
    )
    Entry.objects.close(entry_ids=[entry.pk for entry in replaced], at=number)  # before: one current row a key
    for row in rows:
        row.version = version
    Entry.objects.bulk_create(rows)
    Layer.objects.filter(pk=layer.pk).update(
        current_version=number, current_bytes=total, updated_at=now, updated_by=actor.name
    )
    layer.current_version, layer.current_bytes, layer.updated_at, layer.updated_by = number, total, now, actor.name
    details = {
        "version": version.number,
        "revision": revision,
        "comment": comment,
        "keys": _audit_changes(changes),
    }
    if rolled_back_from is not None:
        details["rolled_back_from"] = rolled_back_from
    if approved and approved.change_request:
        details["change_request"], details["approved_by"] = approved.change_request, list(approved.approved_by)
    audit_record(actor=actor, action=action, target=layer.ref, changes=details)
    version.changes = sorted(changes, key=lambda change: change.key)  # for the caller's answer, not stored
    return version


def _check_publish_input(set_: Any, unset: Any, secrets: Any, comment: Any = "") -> None:
    if not isinstance(set_, Mapping):
        raise InvalidInput("invalid publish", {"set": "must be an object of key → JSON value"})
    if isinstance(unset, (str, bytes)) or not isinstance(unset, Iterable):
        raise InvalidInput("invalid publish", {"unset": "must be a list of keys"})
    if isinstance(secrets, (str, bytes)) or not isinstance(secrets, Iterable):
        raise InvalidInput("invalid publish", {"secrets": "must be a list of keys"})
    errors = {}
    for key in [*set_, *unset]:
        problem = key_problem(key)
        if problem:
            errors[str(key)] = problem
    for key in set(set_) & set(unset):
        errors[key] = "is both set and unset"
    for key in secrets:
        if key not in set_:
            errors[str(key)] = "is listed in secrets but not in set"
    for key, value in set_.items():
        problem = json_problem(value)  # first: depth and text, before anything recurses into it
        if problem:
            errors[str(key)] = problem
            continue
        try:
            size = len(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            errors[str(key)] = "the value is not JSON (NaN, infinity and non-JSON types are refused)"
            continue
        if size > MAX_VALUE_BYTES:
            errors[str(key)] = f"the value is {size} bytes of JSON; the limit is {MAX_VALUE_BYTES}"
    if not isinstance(comment, str) or text_problem(comment):
        errors["comment"] = text_problem(comment) if isinstance(comment, str) else "must be text"
    if errors:
        raise InvalidInput("invalid publish", errors)


@transaction.atomic
def version_publish(
    *,
    layer: Layer,
    base_version: int,
    set_: Mapping[str, Any],
    unset: Collection[str] = (),
    secrets: Collection[str] = (),
    actor: Actor,
    comment: str = "",
) -> LayerVersion:
    """Append the next version of `layer`: the base's entries, plus `set_`, minus `unset`.

    Raises VersionConflict if the layer moved past `base_version`, InvalidInput (key by key) for
    bad keys or values that violate their schema. Secret-ness sticks: a key that is secret in the
    base, or whose definition says secret, stays encrypted whatever the caller says.
    """
    layer = _lock_at(layer, base_version)
    _check_publish_input(set_, unset, secrets, comment)
    touched = set(set_) | set(unset)
    base = _stored_entries(layer, base_version, touched)
    absent = [key for key in unset if key not in base]
    if absent:
        raise InvalidInput(
            "invalid publish", dict.fromkeys(absent, f"is not in version {base_version}, nothing to unset")
        )
    forced = set(KeyDefinition.objects.filter(key__in=list(set_), secret=True).values_list("key", flat=True))
    secret_keys = set(secrets) | forced | {key for key in set_ if key in base and base[key].secret}
    errors = _schema_errors(set_, secret_keys)
    if errors:
        raise InvalidInput("a value violates its key's schema", errors)

    before = {key: _plain_or_unreadable(layer, entry) for key, entry in base.items()}
    after = {key: EntryState(value, key in secret_keys) for key, value in set_.items()}
    changes = entries_diff(before, after)
    changed = {change.key for change in changes}
    return _append_version(
        layer=layer,
        written={key: _Stored(key in secret_keys, value) for key, value in set_.items() if key in changed},
        replaced=[entry for key, entry in base.items() if key in changed],
        changes=changes,
        actor=actor,
        comment=comment,
        action="version.publish",
    )


@transaction.atomic
def env_import(
    *,
    ref: str,
    entries: Mapping[str, Any],
    secrets: Collection[str],
    actor: Actor,
    base_version: int | None = None,
    comment: str = "",
) -> LayerVersion:
    """A .env file's entries (envfile.env_plan) as one new version of `ref`, the layer's other keys kept:
    a publish like any other (schemas, audit, revision; VersionConflict if the layer moved past
    `base_version`, by default the version it is at). A missing layer is created first, in the same
    transaction, so a refused import leaves nothing behind."""
    level, name = parse_layer_ref(ref)
    layer = Layer.objects.filter(level=level, name=name).first() or layer_create(ref=ref, actor=actor)
    base = layer.current_version if base_version is None else base_version
    return version_publish(
        layer=layer, base_version=base, set_=dict(entries), secrets=list(secrets), actor=actor, comment=comment
    )


@transaction.atomic
def version_rollback(
    *, layer: Layer, to_version: int, base_version: int, actor: Actor, comment: str = ""
) -> LayerVersion:
    """Publish a new version whose entries equal version `to_version`'s."""
    layer = _lock_at(layer, base_version)
    if not isinstance(to_version, int) or not 1 <= to_version <= layer.current_version:
        raise NotFound(f"layer {layer.ref} has no version {to_version} (it has versions 1 to {layer.current_version})")
    current, target = _stored_entries(layer, base_version), _stored_entries(layer, to_version)
    before = {k: _plain(layer, e) for k, e in current.items()}
    after = {k: _plain(layer, e) for k, e in target.items()}
    changes = entries_diff(before, after)
    errors = _schema_errors(
        {c.key: c.after for c in changes if c.kind != "removed"}, {c.key for c in changes if c.secret}
    )
    if errors:
        raise InvalidInput(f"version {to_version} has values that violate their key's current schema", errors)
    changed = {change.key for change in changes}
    return _append_version(
        layer=layer,
        written={key: _Stored.of(entry) for key, entry in target.items() if key in changed},
        replaced=[entry for key, entry in current.items() if key in changed],
        changes=changes,
        actor=actor,
        comment=comment or f"Rollback to version {to_version}",
        action="version.rollback",
        rolled_back_from=to_version,
    )


# Key definitions ----------------------------------------------------------------------------


def key_definition_problems(
    *, key: str, schema: Any = None, secret: bool = False, default: Any = _MISSING
) -> dict[str, str]:
    """What is wrong with a key definition, field by field (empty: nothing)."""
    errors = {}
    problem = key_problem(key)
    if problem:
        errors["key"] = problem
    for label, value in (("schema", schema), ("default", None if default is _MISSING else default)):
        problem = json_problem(value)
        if problem:
            errors[label] = problem
    if errors:
        return errors
    if schema is not None:
        problem = schema_problem(schema)
        if problem:
            errors["schema"] = problem
        elif default is not _MISSING:
            problem = value_problem(default, schema)
            if problem:
                errors["default"] = f"violates the schema: {problem}"
    if secret and default is not _MISSING:
        errors["default"] = "a secret key cannot have a default (defaults are stored in plain text)"
    return errors


def definition_state(definition: KeyDefinition | None) -> dict[str, Any] | None:
    """A definition as a change request records its base (None: there is none)."""
    if definition is None:
        return None
    return {
        "description": definition.description,
        "schema": definition.schema,
        "secret": definition.secret,
        "default": definition.default,
        "has_default": definition.has_default,
    }


@transaction.atomic
def key_definition_save(
    *, key: str, description: str = "", schema: Any = None, secret: bool = False, default: Any = _MISSING, actor: Actor
) -> KeyDefinition:
    """Create or replace the definition of `key`. A default acts as a layer below global."""
    errors = key_definition_problems(key=key, schema=schema, secret=secret, default=default)
    if errors:
        raise InvalidInput(f"invalid key definition for {key!r}", errors)
    _require_security_right([key], actor)
    definition = KeyDefinition.objects.select_for_update().filter(key=key).first()
    before = None
    if definition is None:
        definition = KeyDefinition(key=key)
    else:
        before = definition_state(definition)
    proposed = {"schema": schema, "secret": secret, "default": None if default is _MISSING else default}
    _gate(
        f"key:{key}", definition_required_approvals(key, before, {**proposed, "has_default": default is not _MISSING})
    )
    definition.description, definition.schema, definition.secret = description, schema, secret
    definition.has_default = default is not _MISSING
    definition.default = None if default is _MISSING else default
    definition.updated_by = actor.name
    definition.save()
    after = {
        "description": description,
        "schema": schema,
        "secret": secret,
        "default": definition.default,
        "has_default": definition.has_default,
    }
    if before is None or (before["default"], before["has_default"]) != (after["default"], after["has_default"]):
        revision = revision_bump()
        _history_close(DefaultRecord.objects.filter(key=key), revision)
        if definition.has_default:
            DefaultRecord.objects.create(key=key, default=definition.default, valid_from=revision)
    audit_record(actor=actor, action="keydef.save", target=key, changes={"before": before, "after": after})
    return definition


# Reveals: reads of plaintext secrets, each audited -------------------------------------------------


def config_reveal(
    *, environment: str, service: str, user: str | None, actor: Actor, revision: int | None = None
) -> ResolvedConfig:
    """selectors.config_resolve with the secrets opened (all but the registry's own security
    configuration, never revealed: SPEC §12), the reveal audited in the same transaction."""
    revision, resolution = resolution_read(environment, service, user, revision=revision)
    context = context_of(environment, service, user)
    values = dict(resolution.values)
    revealed = sorted(resolution.secrets - SECURITY_KEYS)
    for key in resolution.secrets:
        values[key] = MASK
    for key in revealed:
        values[key] = sealed_open(resolution.values[key])
    if revealed:
        with transaction.atomic():
            audit_record(
                actor=actor,
                action="secret.reveal",
                target=context_label(context),
                changes={"keys": revealed, "revision": revision},
            )
    return ResolvedConfig(revision, context, values, resolution.secrets, resolution.provenance)


def version_reveal(*, layer: Layer, number: int, actor: Actor) -> tuple[dict[str, Any], list[str]]:
    """selectors.version_entries with the secrets decrypted (but the registry's own), audited."""
    if number == 0:
        return {}, []
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


def layers_reveal(*, layers: Sequence[LayerSnapshot], actor: Actor) -> list[dict[str, Any]]:
    """The entries of resolver snapshots (selectors.shared_layers) with their secrets opened (but the
    registry's own, masked), one audit event per layer whose secrets were opened."""
    opened = []
    with transaction.atomic():
        for layer in layers:
            entries = dict(layer.entries)
            revealed = sorted(layer.secrets - SECURITY_KEYS)
            for key in layer.secrets:
                entries[key] = MASK if key in SECURITY_KEYS else sealed_open(entries[key])
            if revealed:
                audit_record(
                    actor=actor,
                    action="secret.reveal",
                    target=layer.ref,
                    changes={"keys": revealed, "version": layer.version},
                )
            opened.append(entries)
    return opened


def secret_reveal(*, layer: Layer, key: str, actor: Actor) -> Any:
    """The plaintext of one secret of the layer's current version, for a person allowed to see
    it; audited. Raises NotFound if the key is not a secret there."""
    entry = Entry.objects.at(layer.pk, layer.current_version).filter(key=key, secret=True).first()
    if entry is None:
        raise NotFound(f"{key!r} is not a secret of layer {layer.ref} version {layer.current_version}")
    if key in SECURITY_KEYS:
        raise NotFound(
            f"{key} is the registry's own security configuration: it is never revealed "
            "(publish new keys instead of reading old ones)"
        )
    value = crypto.decrypt(entry.ciphertext, place=crypto.Place(layer.ref, key), version=entry.valid_from)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="secret.reveal",
            target=layer.ref,
            changes={"keys": [key], "version": layer.current_version},
        )
    return value


# Service tokens -----------------------------------------------------------------------------


@transaction.atomic
def token_create(
    *,
    name: str,
    scopes: Collection[str],
    environments: Collection[str] = (),
    services: Collection[str] = (),
    expires_at: datetime | None = None,
    actor: Actor,
    grantable: Collection[str] | None = None,
) -> tuple[ServiceToken, str]:
    """Create a token; returns it with the plaintext, which is never stored nor shown again.
    `grantable`: the scopes the creator may hand out (None: any, the CLI's operator)."""
    errors = {}
    beyond = sorted(set(scopes) - set(grantable)) if grantable is not None else []
    if beyond:
        raise PermissionRefused(
            f"you may not create a token with {', '.join(beyond)}: a token only gets "
            "scopes whose permissions its creator holds"
        )
    if Scope.SECURITY_WRITE in scopes and (environments or services):
        errors["scopes"] = "security:write is for tokens without environment or service limits"
    if not isinstance(name, str) or not TOKEN_NAME_PATTERN.match(name):
        errors["name"] = "use lowercase letters, digits, - and _ (at most 63 characters)"
    elif ServiceToken.objects.filter(name=name).exists():
        errors["name"] = f"a token named {name!r} already exists"
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        errors["scopes"] = (
            f"unknown scope(s) {', '.join(unknown)}; " if unknown else "at least one scope; "
        ) + f"choose from {', '.join(Scope.values)}"
    for label, names in (("environments", environments), ("services", services)):
        bad = [n for n in names if not NAME_PATTERNS[Level.SERVICE].match(n)]
        if bad:
            errors[label] = f"invalid name(s): {', '.join(map(repr, bad))}"
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "must be in the future"
    if errors:
        raise InvalidInput("cannot create service token", errors)
    raw = "crt_" + token_secrets.token_urlsafe(32)
    token = ServiceToken.objects.create(
        name=name,
        prefix=raw[:12],
        token_hash=crypto.token_hash(raw),
        scopes=sorted(set(scopes)),
        environments=sorted(set(environments)),
        services=sorted(set(services)),
        expires_at=expires_at,
        created_by=actor.name,
    )
    audit_record(
        actor=actor,
        action="token.create",
        target=f"token:{name}",
        changes={
            "scopes": token.scopes,
            "environments": token.environments,
            "services": token.services,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return token, raw


@transaction.atomic
def token_revoke(*, token: ServiceToken, actor: Actor) -> ServiceToken:
    token = ServiceToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="token.revoke", target=f"token:{token.name}")
    return token


def token_mark_used(token: ServiceToken) -> None:
    """Record when a token was last used (not audited: it is a read, and no signal: it changes
    nothing that decides whether the token is valid)."""
    token.last_used_at = timezone.now()
    ServiceToken.objects.filter(pk=token.pk).update(last_used_at=token.last_used_at)


# Encryption keys ----------------------------------------------------------------------------


@dataclass
class RotationReport:
    rewritten: int = 0
    already_current: int = 0
    unreadable: list[SecretUndecryptable] = field(default_factory=list)


@transaction.atomic
def keys_rotate(*, actor: Actor) -> RotationReport:
    """Re-encrypt every stored secret under the primary key. Unreadable values are reported
    by layer, version and key and left exactly as they are: nothing is dropped."""
    report = RotationReport()
    secrets = Entry.objects.filter(secret=True).select_related("layer").order_by("pk")
    for entry in secrets.iterator(chunk_size=500):
        place = crypto.Place(entry.layer.ref, entry.key)
        try:
            rewrapped = crypto.reencrypt(entry.ciphertext, place=place, version=entry.valid_from)
        except SecretUndecryptable as error:
            report.unreadable.append(error)
            continue
        if rewrapped is None:
            report.already_current += 1
        else:
            Entry.objects.rewrap(entry_id=entry.pk, ciphertext=rewrapped)
            report.rewritten += 1
    audit_record(
        actor=actor,
        action="keys.rotate",
        target="registry",
        changes={
            "rewritten": report.rewritten,
            "already_current": report.already_current,
            "unreadable": [str(error) for error in report.unreadable],
        },
    )
    return report
