"""Layers, their versions and the differences between them (secrets masked, or decrypted for diffs)."""

import difflib
from collections.abc import Collection
from typing import Any

from django.contrib.auth import get_user_model

from .. import crypto
from ..diff import MASK, Change, EntryState, entries_diff
from ..exceptions import NotFound
from ..memory import PositionMemo
from ..models import Entry, KeyDefinition, Layer, LayerVersion, Level
from ..validation import parse_layer_ref


def layer_get(ref: str) -> Layer:
    level, name = parse_layer_ref(ref)
    try:
        return Layer.objects.get(level=level, name=name)
    except Layer.DoesNotExist:
        raise NotFound(f"layer {ref} does not exist") from None


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
    for entry in Entry.objects.at(layer.pk, number):
        value = entry.value
        if entry.secret and entry.key in sealed:
            value = entry.ciphertext
        elif entry.secret:
            place = crypto.Place(layer.ref, entry.key)
            value = crypto.decrypt(entry.ciphertext, place=place, version=entry.valid_from)
        states[entry.key] = EntryState(value, entry.secret)
    return states


def version_entries(layer: Layer, number: int) -> tuple[dict, list[str]]:
    """(entries, secret keys) of a version, secrets masked (services.version_reveal opens them)."""
    entries, secrets = {}, []
    if number == 0:
        return entries, secrets
    for entry in Entry.objects.at(layer.pk, number):
        entries[entry.key] = MASK if entry.secret else entry.value
        if entry.secret:
            secrets.append(entry.key)
    return entries, secrets


def version_diff(*, layer: Layer, from_number: int, to_number: int) -> list[Change]:
    """Changes from one version to another (0 = empty). Show them with Change.public()."""
    return entries_diff(version_states(layer, from_number), version_states(layer, to_number))


def env_import_diff(layer: Layer | None, entries: dict, secrets: Collection[str]) -> list[Change]:
    """What importing `entries` into `layer` (None: not created yet) would change; the layer's other
    keys stay. Compared with the secrets' plaintext, so an unchanged secret is not listed; callers show
    each change's public() form only."""
    before = version_states(layer, layer.current_version) if layer is not None else {}
    after = dict(before)
    for key, value in entries.items():
        after[key] = EntryState(value, key in secrets or (key in before and before[key].secret))
    return entries_diff(before, after)


def known_keys() -> set[str]:
    """Every key a layer holds now or a key definition names: what import_env maps variables back to."""
    held = Entry.objects.filter(valid_to__isnull=True).values_list("key", flat=True).distinct()
    return set(held) | set(KeyDefinition.objects.values_list("key", flat=True))


# The environments and services some published layer names, per revision: a resolve's typo check costs a look-up.
KNOWN_NAMES: PositionMemo[str, dict] = PositionMemo("known names", 1, lambda position: position[:2])


def context_warnings(environment: str, service: str, position) -> list[str]:
    """What a resolve of (environment, service) should be told: a name no published layer has, with the
    known ones (`prodution` resolves to global values and defaults only, which is rarely what was meant)."""
    known = KNOWN_NAMES.get(position, "names")
    if known is None:
        rows = Layer.objects.filter(level__in=[Level.ENVIRONMENT, Level.SERVICE], current_version__gt=0)
        known = {Level.ENVIRONMENT: set(), Level.SERVICE: set()}
        for level, name in rows.values_list("level", "name"):
            known[level].add(name)
        KNOWN_NAMES.put(position, "names", known)
    warnings = []
    for label, level, name in (("environment", Level.ENVIRONMENT, environment), ("service", Level.SERVICE, service)):
        if name not in known[level]:
            names = sorted(known[level])
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            warnings.append(
                f"no layer for {label} {name!r}: only what applies everywhere resolves here; {hint}"
                f"known {label}s: {', '.join(names) or 'none'}"
            )
    return warnings


def inherited_values(layer: Layer) -> dict[str, tuple[Any, str]]:
    """What each key resolves to without `layer`, from what lies below it wherever it applies: the global
    layer (below every other layer) and the keys' defaults; secrets masked. (An environment's values lie
    below a service's too, but they differ from one environment to the next.)"""
    inherited: dict[str, tuple[Any, str]] = {}
    for definition in KeyDefinition.objects.filter(has_default=True):
        inherited[definition.key] = (MASK if definition.secret else definition.default, "default")
    if layer.level != Level.GLOBAL:
        base = Layer.objects.filter(level=Level.GLOBAL).first()
        if base is not None and base.current_version:
            entries, _ = version_entries(base, base.current_version)
            inherited.update({key: (value, f"global@{base.current_version}") for key, value in entries.items()})
    return inherited
