"""A .env file (python-dotenv's format, or an `env` dump) as registry entries, SPEC §10: names mapped to
dotted keys, values parsed to JSON types where unambiguous, secrets detected by name. Pure: the import
itself is services.env_import, the preview selectors.env_import_diff."""

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from project.infra.dotenv_bindings import env_bindings

SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")
INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")  # leading zeros (007, 0123) stay text: an id, not a number
FLOAT = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]+([eE][-+]?[0-9]+)?")


def env_name(key: str, prefix: str = "") -> str:
    """`database.password` → `DATABASE_PASSWORD`: the name the client's `exec` gives a key."""
    return prefix + re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").upper()


def key_for(name: str, known: Mapping[str, str]) -> str:
    """The key a variable maps to: a key the registry knows whose env_name() is `name` (`known` maps
    env_name → key), else the name lowered with each `_` a `.` (DATABASE_PASSWORD → database.password)."""
    return known.get(name.upper()) or ".".join(part for part in name.lower().split("_") if part)


def known_by_env_name(keys: Collection[str]) -> dict[str, str]:
    return {env_name(key): key for key in sorted(keys)}


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def value_of(text: str, *, quoted: bool) -> Any:
    """true/false, integers, decimals, JSON arrays and objects; anything else (and anything quoted) text."""
    if quoted:
        return text
    if text in ("true", "false"):
        return text == "true"
    if INTEGER.fullmatch(text):
        return int(text)
    if FLOAT.fullmatch(text):
        return float(text)
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


@dataclass
class EnvPlan:
    """What a file would import: entries by key, which are secret, and what was noticed on the way."""

    entries: dict[str, Any] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)  # key → the variable it came from
    notes: list[str] = field(default_factory=list)  # duplicates, skipped lines: never a value


def env_plan(
    text: str,
    *,
    known_keys: Collection[str] = (),
    prefix: str = "",
    names: Mapping[str, str] | None = None,
    secret_names: Collection[str] = (),
) -> EnvPlan:
    """`names` maps a variable to its key (--map NAME=key); otherwise a key the registry already knows
    whose env_name() is the variable's, else the variable lowered with `_` as `.` (DATABASE_PASSWORD →
    database.password). With `prefix`, only variables that start with it, the prefix removed."""
    names = dict(names or {})
    known = known_by_env_name(known_keys)
    plan, seen = EnvPlan(), {}
    for binding in env_bindings(text):
        if binding.name is None:
            plan.notes.append(f"line {binding.line}: not a NAME=value line, skipped (as python-dotenv does)")
            continue
        if binding.name in seen:
            plan.notes.append(
                f"{binding.name} is set on lines {seen[binding.name]} and {binding.line}: "
                f"the last one (line {binding.line}) is used, as python-dotenv does"
            )
        seen[binding.name] = binding.line
        if binding.value is None:
            plan.notes.append(f"line {binding.line}: {binding.name} has no value, skipped")
            continue
        if binding.name in names:
            key = names[binding.name]
        elif prefix and not binding.name.startswith(prefix):
            continue
        else:
            key = key_for(binding.name[len(prefix) :], known)
        if plan.names.get(key, binding.name) != binding.name:
            plan.notes.append(f"{plan.names[key]} and {binding.name} both map to {key}: {binding.name}'s value is used")
        plan.entries[key] = value_of(binding.value, quoted=binding.quoted)
        plan.names[key] = binding.name
        if looks_secret(binding.name) or binding.name in secret_names:
            plan.secrets.add(key)
        else:
            plan.secrets.discard(key)
    return plan
