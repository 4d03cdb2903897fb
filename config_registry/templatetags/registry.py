"""Template filters for the registry's admin pages."""

import json

from django import template

from ..admin_common import approvals_badge as badge

register = template.Library()


@register.filter
def as_json(value) -> str:
    """A configuration value as a client sees it: JSON (true, null, "text"), not Python's repr."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@register.filter
def get_item(mapping, key):
    """mapping[key] in a template (None when absent)."""
    return mapping.get(key) if mapping else None


@register.filter
def approvals_badge(layer):
    """The badge of a layer that requires approvals (SPEC §11)."""
    return badge(layer)
