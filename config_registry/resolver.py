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
