"""Export and import of a whole registry (layers, every version, key definitions) as JSON.

Secrets stay ciphertext unless plaintext is explicitly asked for; an import checks everything
(keys, version numbers, that each ciphertext opens at its place) before it writes anything.
"""

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import crypto
from .audit import Actor, audit_record
from .exceptions import ApprovalRequired, InvalidInput, SecretUndecryptable
from .limits import json_problem
from .models import Entry, KeyDefinition, Layer, LayerVersion, Level
from .selectors import consistent_read, registry_revision
from .services import definition_required_approvals, definition_state, revision_bump
from .validation import key_problem, parse_layer_ref, schema_problem

FORMAT = "config-registry-export"
FORMAT_VERSION = 1


@transaction.atomic
def registry_export(*, decrypt_secrets: bool = False, actor: Actor) -> dict[str, Any]:
    """Everything needed to rebuild the registry elsewhere. Audited, plaintext or not."""
    with consistent_read():
        revision = registry_revision()
        definitions = [
            {
                "key": d.key,
                "description": d.description,
                "schema": d.schema,
                "secret": d.secret,
                "has_default": d.has_default,
                "default": d.default,
            }
            for d in KeyDefinition.objects.order_by("key")
        ]
        layers = []
        for layer in Layer.objects.order_by("level", "name"):
            versions = []
            for version, entries in _versions_with_entries(layer):
                plain, secret = {}, {}
                for entry in entries:
                    if not entry.secret:
                        plain[entry.key] = entry.value
                    elif decrypt_secrets:
                        secret[entry.key] = crypto.decrypt(
                            entry.ciphertext, version=entry.valid_from, place=crypto.Place(layer.ref, entry.key)
                        )
                    else:
                        secret[entry.key] = entry.ciphertext
                versions.append(
                    {
                        "number": version.number,
                        "author": version.author,
                        "created_at": version.created_at.isoformat(),
                        "comment": version.comment,
                        "rolled_back_from": version.rolled_back_from,
                        "entries": plain,
                        "secrets": secret,
                    }
                )
            layers.append(
                {
                    "ref": layer.ref,
                    "description": layer.description,
                    "priority": layer.priority,
                    "required_approvals": layer.required_approvals,
                    "versions": versions,
                }
            )
    audit_record(
        actor=actor,
        action="config.export",
        target="registry",
        changes={
            "secrets": "plaintext" if decrypt_secrets else "ciphertext",
            "layers": len(layers),
            "revision": revision,
        },
    )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "revision": revision,
        "secrets": "plaintext" if decrypt_secrets else "ciphertext",
        "key_definitions": definitions,
        "layers": layers,
    }


def _versions_with_entries(layer: Layer) -> Iterator[tuple[LayerVersion, list[Entry]]]:
    """Each version of `layer` with its complete entry set (the file format: a version holds every
    entry), from one read of its rows: a row joins at `valid_from` and leaves at `valid_to`."""
    joining: dict[int, list[Entry]] = {}
    leaving: dict[int, list[Entry]] = {}
    for entry in Entry.objects.filter(layer=layer):
        joining.setdefault(entry.valid_from, []).append(entry)
        if entry.valid_to is not None:
            leaving.setdefault(entry.valid_to, []).append(entry)
    current: dict[str, Entry] = {}
    for version in layer.versions.order_by("number"):
        for entry in leaving.get(version.number, []):
            current.pop(entry.key, None)
        for entry in joining.get(version.number, []):
            current[entry.key] = entry
        yield version, [current[key] for key in sorted(current)]


class _SealedIn:
    """The version a secret's ciphertext in an export is bound to: the one where that ciphertext
    first appears for its key (a version that carries a secret on repeats its ciphertext; exports of
    earlier releases sealed each version's copy anew)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, Any]] = {}

    def __call__(self, key: str, ciphertext: str, number: Any) -> Any:
        seen = self._seen.get(key)
        if seen is None or seen[0] != ciphertext:
            self._seen[key] = seen = (ciphertext, number)
        return seen[1]


def _contents(
    number_data: dict, layer: Layer, number: int, plaintext: bool, sealed_in: _SealedIn
) -> dict[str, tuple[str, Callable[[], Entry]]]:
    """Each entry of an exported version: its content (to see where a run of equal values ends)
    and how to make its row, if a new one is needed (a secret is sealed only then)."""
    present: dict[str, tuple[str, Callable[[], Entry]]] = {}
    for key, value in number_data.get("entries", {}).items():
        present[key] = (_canonical(["plain", value]), partial(Entry, key=key, value=value))
    for key, secret in number_data.get("secrets", {}).items():
        place = crypto.Place(layer.ref, key)
        if plaintext:
            opened, bound = secret, None
        else:
            bound = sealed_in(key, secret, number)
            opened = crypto.decrypt(secret, place=place, version=bound, allow_unbound=True)
        present[key] = (_canonical(["secret", opened]), partial(_secret_row, key, secret, opened, place, bound, number))
    return present


def _secret_row(key: str, exported: Any, value: Any, place: crypto.Place, bound: Any, number: int) -> Entry:
    """A secret's row as written by version `number`: its exported ciphertext when bound there (re-sealed
    under the primary key if need be), else sealed anew."""
    if bound == number:
        ciphertext = crypto.reencrypt(exported, place=place, version=number) or exported
    else:
        ciphertext = crypto.encrypt(value, place=place, version=number)
    return Entry(key=key, secret=True, ciphertext=ciphertext)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _require(condition: bool, where: str, problem: str, errors: dict[str, str]) -> bool:
    if not condition:
        errors.setdefault(where, problem)
    return condition


def _validated(data: Any, allow_missing_users: bool, missing_users: list[str]) -> tuple[bool, list[dict], list[dict]]:
    """Check the whole document first; raise InvalidInput listing every problem found."""
    errors: dict[str, str] = {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInput(f'not a Config Registry export (expected "format": "{FORMAT}")')
    if data.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(
            f"unsupported export format_version {data.get('format_version')!r}; "
            f"this registry reads version {FORMAT_VERSION}"
        )
    plaintext = data.get("secrets") == "plaintext"
    definitions, layers = data.get("key_definitions", []), data.get("layers", [])
    _require(isinstance(definitions, list), "key_definitions", "must be a list", errors)
    _require(isinstance(layers, list), "layers", "must be a list", errors)
    if errors:
        raise InvalidInput("invalid export", errors)
    for definition in definitions:
        key = definition.get("key") if isinstance(definition, dict) else None
        problem = key_problem(key)
        if _require(problem is None, f"key_definitions[{key!r}]", problem or "", errors) and (
            definition.get("schema") is not None
        ):
            schema_error = schema_problem(definition["schema"])
            _require(schema_error is None, f"key_definitions[{key!r}]", schema_error or "", errors)
    existing = {layer.ref for layer in Layer.objects.all()}
    gated = {layer.ref: layer.required_approvals for layer in Layer.objects.filter(required_approvals__gt=0)}
    for definition in definitions:  # a definition an import changes is gated as in the admin (SPEC §11)
        if isinstance(definition, dict) and key_problem(definition.get("key")) is None:
            key = definition["key"]
            current = definition_state(KeyDefinition.objects.filter(key=key).first())
            imported = {name: definition.get(name) for name in ("schema", "default")}
            imported |= {"secret": bool(definition.get("secret")), "has_default": bool(definition.get("has_default"))}
            required = definition_required_approvals(key, current, imported)
            if required:
                errors[f"key_definitions[{key!r}]"] = str(
                    ApprovalRequired(target=f"key:{key}", required=required, via="an import cannot change it")
                )
    for layer in layers:
        ref = layer.get("ref") if isinstance(layer, dict) else None
        try:
            level, name = parse_layer_ref(ref)
        except InvalidInput as error:
            errors[f"layers[{ref!r}]"] = "; ".join(error.errors.values())
            continue
        if level == Level.USER and not get_user_model().objects.filter(username=name).exists():
            if allow_missing_users:
                missing_users.append(name)
            else:  # a layer waiting for whoever takes that name next would hand them its values
                errors[f"layers[{ref!r}]"] = (
                    f"there is no user named {name!r} here: create the user first "
                    "(or import with --allow-missing-users)"
                )
        if level == Level.GROUP and not Group.objects.filter(name=name).exists():
            errors[f"layers[{ref!r}]"] = f"there is no group named {name!r} here: create the group first"
        approvals = layer.get("required_approvals", 0)
        _require(
            isinstance(approvals, int) and not isinstance(approvals, bool) and 0 <= approvals <= 10,
            ref,
            "required_approvals must be a whole number from 0 to 10",
            errors,
        )
        if ref in gated:
            errors[ref] = str(ApprovalRequired(target=ref, required=gated[ref], via="an import cannot replace it"))
        _require(ref not in existing, ref, "already exists here: import into an empty registry", errors)
        versions = layer.get("versions", [])
        sealed_in = _SealedIn()
        numbers = [v.get("number") for v in versions if isinstance(v, dict)]
        _require(
            numbers == list(range(1, len(versions) + 1)),
            ref,
            "versions must be numbered 1, 2, 3, … without gaps",
            errors,
        )
        for version in versions:
            if not isinstance(version, dict):
                continue
            where = f"{ref} version {version.get('number')}"
            plain, secret = version.get("entries", {}), version.get("secrets", {})
            if not (isinstance(plain, dict) and isinstance(secret, dict)):
                errors[where] = "entries and secrets must be objects of key → value"
                continue
            for key in [*plain, *secret]:
                problem = key_problem(key)
                _require(problem is None, f"{where} key {key!r}", problem or "", errors)
            for key in set(plain) & set(secret):
                errors[f"{where} key {key!r}"] = "is both a plain entry and a secret"
            for key, value in plain.items():
                problem = json_problem(value)
                _require(problem is None, f"{where} key {key!r}", problem or "", errors)
            if not plaintext:
                for key, ciphertext in version.get("secrets", {}).items():
                    bound = sealed_in(key, ciphertext, version.get("number"))
                    try:  # allow_unbound: exports of earlier releases, re-sealed on import
                        crypto.decrypt(ciphertext, place=crypto.Place(ref, key), version=bound, allow_unbound=True)
                    except SecretUndecryptable as error:
                        errors[f"{where} key {key!r}"] = (
                            f"{error.reason}: import with the same CONFIG_REGISTRY_KEYS as the source"
                        )
    if errors:
        raise InvalidInput("the export cannot be imported, nothing was written", errors)
    return plaintext, definitions, layers


@transaction.atomic
def registry_import(*, data: Any, actor: Actor, allow_missing_users: bool = False) -> dict[str, Any]:
    """Recreate layers with their full history and key definitions, in one transaction. User layers
    need their user here, unless `allow_missing_users` (then they are named in the answer)."""
    missing_users: list[str] = []
    plaintext, definitions, layers = _validated(data, allow_missing_users, missing_users)
    for definition in definitions:
        KeyDefinition.objects.update_or_create(
            key=definition["key"],
            defaults={
                "description": definition.get("description", ""),
                "schema": definition.get("schema"),
                "secret": bool(definition.get("secret")),
                "has_default": bool(definition.get("has_default")),
                "default": definition.get("default"),
                "updated_by": actor.name,
            },
        )
    revision = revision_bump()
    version_count = 0
    for item in layers:
        level, name = parse_layer_ref(item["ref"])
        layer = Layer.objects.create(
            level=level,
            name=name,
            description=item.get("description", ""),
            priority=item.get("priority", 0),
            required_approvals=item.get("required_approvals", 0),  # a restored layer keeps its gate
        )
        rows, sealed_in = [], _SealedIn()
        current: dict[str, tuple[str, Entry]] = {}  # key -> (canonical content, its open row)
        for number_data in item.get("versions", []):
            created_at = parse_datetime(number_data.get("created_at") or "") or timezone.now()
            version = LayerVersion.objects.create(
                layer=layer,
                number=number_data["number"],
                revision=revision,
                author=number_data.get("author", actor.name),
                created_at=created_at,
                comment=number_data.get("comment", ""),
                rolled_back_from=number_data.get("rolled_back_from"),
            )
            number = version.number
            present = _contents(number_data, layer, number, plaintext, sealed_in)
            for key in [key for key in current if key not in present or current[key][0] != present[key][0]]:
                current.pop(key)[1].valid_to = number
            for key, (content, make) in present.items():
                if key not in current:
                    row = make()
                    row.version, row.layer, row.valid_from = version, layer, number
                    rows.append(row)
                    current[key] = (content, row)
            layer.current_version, layer.updated_at, layer.updated_by = version.number, created_at, version.author
            version_count += 1
        Entry.objects.bulk_create(rows)
        layer.current_bytes = sum(row.size() for _, row in current.values())
        layer.save(update_fields=["current_version", "current_bytes", "updated_at", "updated_by"])
    counts = {"layers": len(layers), "versions": version_count, "key_definitions": len(definitions)}
    audit_record(
        actor=actor,
        action="config.import",
        target="registry",
        changes={**counts, "secrets": "plaintext" if plaintext else "ciphertext", "missing_users": missing_users},
    )
    return {**counts, "missing_users": missing_users}
