"""Compare two contexts ("what differs between production and staging, or between what alice and bob
get?") or two layers: added, removed, changed, with where each side's value comes from. Secrets are
never opened: two secret values count as the same only when they come from the same layer version."""

from dataclasses import dataclass
from typing import Any

from ..diff import MASK, canonical_json
from ..models import Layer
from .resolution import ResolvedConfig, config_resolve, provenance_as_dict
from .versions import version_entries


@dataclass(frozen=True)
class Side:
    label: str
    values: dict[str, Any]  # masked
    secrets: frozenset[str]
    origins: dict[str, dict]  # key → where its value comes from ({"layer", "version", …})


def context_side(environment: str, service: str, user: str | None) -> Side:
    resolved: ResolvedConfig = config_resolve(environment=environment, service=service, user=user)
    label = "/".join(part for part in (environment, service, user) if part)
    origins = {key: provenance_as_dict(origin) for key, origin in resolved.provenance.items()}
    return Side(f"{label} (revision {resolved.revision})", resolved.values, resolved.secrets, origins)


def layer_side(layer: Layer) -> Side:
    entries, secrets = version_entries(layer, layer.current_version)
    origin = {"layer": layer.ref, "version": layer.current_version}
    return Side(f"{layer.ref}@{layer.current_version}", entries, frozenset(secrets), dict.fromkeys(entries, origin))


def sides_compare(left: Side, right: Side) -> dict[str, Any]:
    """{"left", "right", "added": {key: …}, "removed", "changed", "unchanged": n}: added is in right only."""
    answer: dict[str, Any] = {"left": left.label, "right": right.label, "added": {}, "removed": {}, "changed": {}}
    unchanged = 0
    for key in sorted(left.values.keys() | right.values.keys()):
        secret = key in left.secrets or key in right.secrets
        if key not in left.values:
            answer["added"][key] = _shown(right, key, "after", secret)
        elif key not in right.values:
            answer["removed"][key] = _shown(left, key, "before", secret)
        elif _same(left, right, key, secret):
            unchanged += 1
        else:
            answer["changed"][key] = {
                **_shown(left, key, "before", secret),
                **_shown(right, key, "after", secret),
                "secret": secret,
            }
    answer["unchanged"] = unchanged
    return answer


def _same(left: Side, right: Side, key: str, secret: bool) -> bool:
    if secret:  # never opened: equal only when both are the same stored value
        return _where(left.origins.get(key)) == _where(right.origins.get(key))
    return canonical_json(left.values[key]) == canonical_json(right.values[key])


def _where(origin: dict | None) -> tuple | None:
    return (origin["layer"], origin["version"]) if origin else None


def _shown(side: Side, key: str, name: str, secret: bool) -> dict[str, Any]:
    origin = side.origins.get(key)
    where = {"layer": origin["layer"], "version": origin["version"]} if origin else None
    return {name: MASK if secret else side.values[key], f"{name}_from": where, "secret": secret}
