"""Differences between two entry sets: pure, used by version diffs and audit events."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MASK = "********"


@dataclass(frozen=True)
class EntryState:
    """An entry with its plain value (a secret's plaintext too: callers mask before showing it)."""

    value: Any
    secret: bool = False


@dataclass(frozen=True)
class Change:
    key: str
    kind: str  # "added" | "removed" | "changed"
    secret: bool
    before: Any = None
    after: Any = None

    def public(self) -> dict[str, Any]:
        """What may be shown to anyone: a secret is only said to have changed."""
        if self.secret:
            return {"kind": self.kind, "secret": True}
        shown: dict[str, Any] = {"kind": self.kind, "secret": False}
        if self.kind != "added":
            shown["before"] = self.before
        if self.kind != "removed":
            shown["after"] = self.after
        return shown


def canonical_json(value: Any) -> str:
    """One text per JSON value (keys sorted, no spaces), so that 1, 1.0 and true differ as they do
    for a client: for comparing values and fingerprinting them."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def entries_diff(before: Mapping[str, EntryState], after: Mapping[str, EntryState]) -> list[Change]:
    """Added, removed and changed keys, sorted by key. A change of secret-ness is a change."""
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None:
            changes.append(Change(key, "added", new.secret, after=new.value))
        elif new is None:
            changes.append(Change(key, "removed", old.secret, before=old.value))
        elif old.secret != new.secret or canonical_json(old.value) != canonical_json(new.value):
            changes.append(Change(key, "changed", old.secret or new.secret, old.value, new.value))
    return changes


def diff_as_dict(changes: list[Change]) -> dict[str, dict[str, Any]]:
    """The public form: {"added": {key: …}, "removed": {…}, "changed": {…}}."""
    grouped: dict[str, dict[str, Any]] = {"added": {}, "removed": {}, "changed": {}}
    for change in changes:
        grouped[change.kind][change.key] = change.public()
    return grouped
