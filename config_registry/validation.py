"""Input rules of the registry: key names, layer refs, JSON Schema checks. No ORM."""

import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .exceptions import InvalidInput
from .models import Level

# The registry's own security configuration: the keys config_registry.security reads. Never served
# by any API or protocol, whatever the scopes; written only with the dedicated right (SPEC §12).
SECURITY_KEYS = frozenset({"chat.signing_keys"})

KEY_PATTERN = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
KEY_MAX_LENGTH = 200
# Environments and services are names chosen by operators; groups and users follow Django's names.
NAME_PATTERNS = {
    Level.ENVIRONMENT: re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$"),
    Level.SERVICE: re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$"),
    # No "/" (refs appear in URL paths), no control characters or lone surrogates (not storable).
    Level.GROUP: re.compile(
        r"^[^/\s\x00-\x1f\x7f\ud800-\udfff]([^/\x00-\x1f\x7f\ud800-\udfff]{0,148}"
        r"[^/\s\x00-\x1f\x7f\ud800-\udfff])?$"
    ),
    Level.USER: re.compile(r"^[\w.@+-]{1,150}$"),
}


def key_problem(key: Any) -> str | None:
    """Why `key` is not a valid entry key, or None."""
    if not isinstance(key, str):
        return "a key must be a string"
    if len(key) > KEY_MAX_LENGTH:
        return f"a key is at most {KEY_MAX_LENGTH} characters"
    if not KEY_PATTERN.match(key):
        return "use dotted lowercase words: letters a-z, digits and _, separated by dots (e.g. chat.max_message_length)"
    return None


def parse_layer_ref(ref: str) -> tuple[str, str]:
    """'user:alice' -> ('user', 'alice'); 'global' -> ('global', ''). Raises InvalidInput."""
    if ref == Level.GLOBAL:
        return Level.GLOBAL, ""
    level, sep, name = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    if not sep or level not in NAME_PATTERNS:
        raise InvalidInput(
            "invalid layer ref",
            {"ref": f"{ref!r} is not one of global, environment:<name>, service:<name>, group:<name>, user:<username>"},
        )
    if not NAME_PATTERNS[level].match(name):
        raise InvalidInput("invalid layer ref", {"ref": f"{name!r} is not a valid {level} name"})
    return level, name


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a usable JSON Schema, or None."""
    if not isinstance(schema, (dict, bool)):
        return "a JSON Schema must be an object"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        return f"not a valid JSON Schema: {error.message}"
    return None


def value_problem(value: Any, schema: Any, *, secret: bool = False) -> str | None:
    """Why `value` violates `schema` (first error, with its path), or None. For a secret, which
    rule of the schema it breaks, never the value (jsonschema's messages quote it)."""
    error = next(iter(Draft202012Validator(schema).iter_errors(value)), None)
    if error is None:
        return None
    if secret:
        return f"the secret value does not satisfy the schema's {error.validator!r} rule (the value is not shown)"
    path = "".join(f"[{part!r}]" for part in error.absolute_path)
    return f"at value{path}: {error.message}" if path else error.message
