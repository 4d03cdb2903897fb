"""Key search: where a key is set, across every layer, and where each of those values wins (SPEC §4's
precedence); for the admin's key search and GET /api/v1/keys/{key}. Values of secrets are never read."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..diff import MASK
from ..models import Entry, KeyDefinition, Layer, Level

ORDER = [Level.GLOBAL, Level.ENVIRONMENT, Level.SERVICE, Level.GROUP, Level.USER]


@dataclass
class KeySetting:
    layer: str
    level: str
    version: int  # the version the value was set in
    value: Any  # MASK for a secret
    secret: bool
    current: bool  # still in the layer's current version (else: a past value, until `until`)
    until: int | None = None
    wins_in: list[str] = field(default_factory=list)  # environment/service pairs whose service view it gives
    overridden_by: list[str] = field(default_factory=list)  # higher layers that set it too


@dataclass
class KeyFound:
    key: str
    definition: KeyDefinition | None
    settings: list[KeySetting]

    def as_dict(self) -> dict[str, Any]:
        definition = self.definition
        shown = None
        if definition is not None:
            default = (MASK if definition.secret else definition.default) if definition.has_default else None
            shown = {
                "description": definition.description,
                "schema": definition.schema,
                "secret": definition.secret,
                "has_default": definition.has_default,
                "default": default,
            }
        return {"key": self.key, "definition": shown, "layers": [vars(setting) for setting in self.settings]}


def key_find(key: str, *, history: bool = False, reachable: Callable[[str], bool] = lambda ref: True) -> KeyFound:
    """Every layer (that `reachable` lets the caller see) that sets `key` now (and, with `history`,
    every past value), lowest level first, with where each current value wins."""
    entries = Entry.objects.filter(key=key).select_related("layer")
    if not history:
        entries = entries.filter(valid_to__isnull=True)
    found = []
    for entry in entries.order_by("valid_from"):
        layer = entry.layer
        if not reachable(layer.ref):
            continue
        found.append(
            KeySetting(
                layer=layer.ref,
                level=layer.level,
                version=entry.valid_from,
                value=MASK if entry.secret else entry.value,
                secret=entry.secret,
                current=entry.valid_to is None,
                until=entry.valid_to,
            )
        )
    found.sort(key=lambda s: (ORDER.index(s.level), s.layer, not s.current, s.version))
    _wins(found, reachable)
    return KeyFound(key, KeyDefinition.objects.filter(key=key).first(), found)


def _wins(found: list[KeySetting], reachable: Callable[[str], bool]) -> None:
    current = {setting.layer: setting for setting in found if setting.current}
    environments = [f"environment:{n}" for n in _names(Level.ENVIRONMENT) if reachable(f"environment:{n}")]
    services = [f"service:{n}" for n in _names(Level.SERVICE) if reachable(f"service:{n}")]
    for environment in environments:
        for service in services:
            for ref in (service, environment, "global"):  # the service view's precedence, highest first
                if ref in current:
                    current[ref].wins_in.append(f"{environment.partition(':')[2]}/{service.partition(':')[2]}")
                    break
    for setting in current.values():
        rank = ORDER.index(setting.level)
        setting.overridden_by = [other.layer for other in current.values() if ORDER.index(other.level) > rank]


def _names(level: str) -> list[str]:
    return sorted(Layer.objects.filter(level=level).values_list("name", flat=True))
