"""Resolution: a pure function over plain data. Standard library only (a test keeps it so)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerSnapshot:
    """One layer as read at a revision. Secret values are opaque: the resolver never looks inside."""

    ref: str
    version: int | None
    entries: Mapping[str, Any]
    secrets: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Origin:
    layer: str
    version: int | None


@dataclass(frozen=True)
class Provenance:
    """Where a value came from, and the lower layers that also define it (highest first)."""

    layer: str
    version: int | None
    overrides: tuple[Origin, ...] = ()


@dataclass(frozen=True)
class Resolution:
    values: dict[str, Any]
    secrets: frozenset[str]
    provenance: dict[str, Provenance] = field(default_factory=dict)


def resolve(layers: Sequence[LayerSnapshot]) -> Resolution:
    """Lowest layer first; a higher layer's value for a key replaces the lower one's (no deep merge)."""
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    defined_in: dict[str, list[Origin]] = {}
    for layer in layers:
        for key, value in layer.entries.items():
            values[key] = value
            if key in layer.secrets:
                secrets.add(key)
            else:
                secrets.discard(key)
            defined_in.setdefault(key, []).append(Origin(layer.ref, layer.version))
    provenance = {
        key: Provenance(origins[-1].layer, origins[-1].version, tuple(reversed(origins[:-1])))
        for key, origins in defined_in.items()
    }
    ordered = sorted(values)
    return Resolution(
        values={key: values[key] for key in ordered},
        secrets=frozenset(secrets),
        provenance={key: provenance[key] for key in ordered},
    )


def compose(shared: Resolution, overlays: Sequence[LayerSnapshot]) -> Resolution:
    """`shared` (the resolution of the lower layers) with `overlays` applied on top, lowest first:
    the same values, secrets and provenance as resolving all the layers at once, at the cost of the
    overlays (a property test holds the two equal)."""
    if not any(layer.entries for layer in overlays):
        return shared
    values = dict(shared.values)
    secrets = set(shared.secrets)
    provenance = dict(shared.provenance)
    added = False
    for layer in overlays:
        for key, value in layer.entries.items():
            added = added or key not in values
            values[key] = value
            if key in layer.secrets:
                secrets.add(key)
            else:
                secrets.discard(key)
            below = provenance.get(key)
            overrides = (Origin(below.layer, below.version), *below.overrides) if below else ()
            provenance[key] = Provenance(layer.ref, layer.version, overrides)
    if not added:  # the shared part's keys, in its (sorted) order
        return Resolution(values=values, secrets=frozenset(secrets), provenance=provenance)
    ordered = sorted(values)
    return Resolution(
        values={key: values[key] for key in ordered},
        secrets=frozenset(secrets),
        provenance={key: provenance[key] for key in ordered},
    )


def restrict(resolution: Resolution, prefix: str | tuple[str, ...]) -> Resolution:
    """Only the keys that start with `prefix` (composing commutes with it: a key's result depends
    on that key's entries alone)."""
    return Resolution(
        values={key: value for key, value in resolution.values.items() if key.startswith(prefix)},
        secrets=frozenset(key for key in resolution.secrets if key.startswith(prefix)),
        provenance={key: p for key, p in resolution.provenance.items() if key.startswith(prefix)},
    )


def layer_restrict(layer: LayerSnapshot, prefix: str | tuple[str, ...]) -> LayerSnapshot:
    entries = {key: value for key, value in layer.entries.items() if key.startswith(prefix)}
    return LayerSnapshot(layer.ref, layer.version, entries, frozenset(key for key in layer.secrets if key in entries))
