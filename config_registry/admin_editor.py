"""The layer editor's form: entries as rows, turned into a publish (set, unset, secrets).

No business rules here beyond reading the form: version_publish validates and decides.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from django import forms

from .diff import MASK, Change, EntryState, canonical_json, entries_diff

NEW_ROWS = 3
NEW_SECRET = "\x00a new secret value"  # differs from the mask, so a typed secret always shows as changed


class EntryRowForm(forms.Form):
    key = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"size": 32, "spellcheck": "false"})
    )
    value = forms.CharField(
        required=False, strip=False, widget=forms.Textarea(attrs={"rows": 1, "cols": 48, "spellcheck": "false"})
    )
    secret = forms.BooleanField(required=False)
    delete = forms.BooleanField(required=False)
    # "1" or "": hidden flags that read the same before and after a round trip through the form
    # (a hidden BooleanField comes back as the text "False", which a template takes for true).
    existing = forms.CharField(required=False, widget=forms.HiddenInput)
    was_secret = forms.CharField(required=False, widget=forms.HiddenInput)


EntryFormSet = forms.formset_factory(EntryRowForm, extra=0)


def editor_initial(entries: dict[str, Any], secrets: list[str]) -> list[dict]:
    """Rows for the current entries (secret values never leave the server), then empty ones."""
    rows = []
    for key in sorted(entries):
        secret = key in secrets
        rows.append(
            {
                "key": key,
                "existing": "1",
                "secret": secret,
                "was_secret": "1" if secret else "",
                "value": "" if secret else json.dumps(entries[key], ensure_ascii=False),
            }
        )
    return rows + [{"key": "", "value": ""} for _ in range(NEW_ROWS)]


@dataclass
class EditorChange:
    set_: dict[str, Any] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def diff(self, entries: dict[str, Any], secrets: list[str]) -> list[Change]:
        """What publishing would change; a new secret value shows only as changed."""
        before = {key: EntryState(MASK if key in secrets else value, key in secrets) for key, value in entries.items()}
        after = dict(before)
        for key in self.unset:
            after.pop(key, None)
        for key, value in self.set_.items():
            secret = key in self.secrets or key in secrets
            after[key] = EntryState(NEW_SECRET if secret else value, secret)  # a secret: always "changed"
        return entries_diff(before, after)


def editor_change(formset: EntryFormSet, entries: dict[str, Any]) -> EditorChange:
    """Read the rows against the entries they were edited from."""
    change = EditorChange()
    for row in formset.cleaned_data:
        key = (row.get("key") or "").strip()
        if not key:
            continue
        if row.get("delete"):
            if row.get("existing") == "1":
                change.unset.append(key)
            continue
        text = row.get("value") or ""
        if row.get("was_secret") == "1":
            if text.strip():  # a secret is write-only: an empty box keeps it as it is
                change.set_[key] = _json(text, key, change)
                change.secrets.append(key)
            continue
        if not text.strip():
            if row.get("existing") != "1":
                change.errors[key] = "give a value as JSON (a string in double quotes, a number, true, …)"
            continue
        value = _json(text, key, change)
        if key in change.errors:
            continue
        if row.get("existing") == "1" and key in entries and _same(entries[key], value):
            continue
        change.set_[key] = value
        if row.get("secret"):
            change.secrets.append(key)
    return change


def _json(text: str, key: str, change: EditorChange) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        as_text = json.dumps(text.strip(), ensure_ascii=False)
        change.errors[key] = f"not valid JSON ({error.msg}): as a string, write it in double quotes: {as_text}"
        return None


def _same(a: Any, b: Any) -> bool:
    return canonical_json(a) == canonical_json(b)
