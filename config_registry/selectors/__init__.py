"""Reads of the registry, by use case: position, resolution, answers, versions, tokens. (Writes,
audited reveals among them, are config_registry.services.) Re-exported here for callers that read
several kinds."""

from .answers import ANSWERS, answer_body, resolve_answer, resolve_etag
from .position import (
    Position,
    consistent_read,
    database_position,
    registry_position,
    registry_position_known,
    registry_revision,
)
from .resolution import (
    ResolvedConfig,
    Sealed,
    config_resolve,
    config_view,
    context_label,
    context_of,
    contexts_resolve,
    masked,
    provenance_as_dict,
    resolution_read,
    revision_at,
    revision_check,
    sealed_open,
    service_resolution,
    shared_layers,
)
from .tokens import TOKENS, TokenRejected, token_authenticate
from .versions import layer_get, layer_reach, version_diff, version_entries, version_get, version_states

__all__ = [
    "ANSWERS",
    "TOKENS",
    "Position",
    "ResolvedConfig",
    "Sealed",
    "TokenRejected",
    "answer_body",
    "config_resolve",
    "config_view",
    "consistent_read",
    "context_label",
    "context_of",
    "contexts_resolve",
    "masked",
    "database_position",
    "layer_get",
    "layer_reach",
    "provenance_as_dict",
    "registry_position",
    "registry_position_known",
    "registry_revision",
    "resolution_read",
    "revision_at",
    "revision_check",
    "resolve_answer",
    "resolve_etag",
    "sealed_open",
    "service_resolution",
    "shared_layers",
    "token_authenticate",
    "version_diff",
    "version_entries",
    "version_get",
    "version_states",
]
