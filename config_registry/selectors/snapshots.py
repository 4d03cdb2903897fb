"""Layers as the pure resolver sees them: each layer's entries at one version, secrets sealed."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, Subquery

from .. import crypto
from ..models import DefaultRecord, Entry, Layer, LayerVersion
from ..resolver import LayerSnapshot

DEFAULTS_REF = "default"  # provenance of a value that comes from a key definition's default


@dataclass(frozen=True)
class Sealed:
    """A secret as the resolver sees it: opaque, opened only if it wins and may be revealed."""

    place: crypto.Place
    version: int
    ciphertext: str


def snapshots_at(layers: Sequence[Layer], revision: int) -> list[LayerSnapshot]:
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


def defaults_at(revision: int) -> LayerSnapshot:
    """The key definitions' defaults as they were at `revision` (recorded by revision)."""
    return LayerSnapshot(DEFAULTS_REF, None, dict(DefaultRecord.objects.at(revision).values_list("key", "default")))
