"""Answers of the resolve endpoint as bytes with a strong ETag: kept by position in this process
(ANSWERS) and in the shared cache, so that a warm resolve is a position read and a look-up."""

import hashlib
import json

from django.core.cache import cache

from ..memory import PositionMemo
from ..metrics import RESOLVE_ANSWERS, RESOLVE_ANSWERS_MEMORY
from ..state import Position, registry_position
from .resolution import (
    ResolvedConfig,
    config_resolve,
    context_of,
    revision_check,
    shared_cache_key,
    shared_cache_set,
)

# Masked answers (ETag, body) at one (epoch, revision), by request: none goes stale.
ANSWERS: PositionMemo[tuple, tuple[str, bytes]] = PositionMemo("resolve answers", 512, lambda position: position[:2])


def resolve_etag(*, epoch: str, revision: int, context: dict[str, str], explain: bool, revealed: bool = False) -> str:
    """Strong ETag of a resolve answer: the same revision and request give the same bytes."""
    digest = hashlib.sha256(repr((epoch, sorted(context.items()), explain, revealed)).encode()).hexdigest()
    return f'"{revision}-{digest[:20]}"'


def answer_body(resolved: ResolvedConfig, *, explain: bool) -> bytes:
    return json.dumps(resolved.as_dict(explain=explain), separators=(",", ":")).encode()


def resolve_answer(
    *,
    environment: str,
    service: str,
    user: str | None,
    explain: bool,
    position: Position | None = None,
    revision: int | None = None,
) -> tuple[str, bytes]:
    """(ETag, JSON body) of a masked resolve at `position` (read now if not given), or at a past
    `revision` (an answer that never changes). Whatever the number of keys, a warm answer costs a
    dictionary look-up."""
    request = (environment, service, user, explain, revision)
    position = position or registry_position()
    known = ANSWERS.get(position, request)
    if known is not None:
        RESOLVE_ANSWERS_MEMORY.inc()
        return known
    context = context_of(environment, service, user)
    if revision is not None:  # checked before anything is looked up under it
        revision_check(revision, position)
    etag = resolve_etag(epoch=position.epoch, revision=revision or position.revision, context=context, explain=explain)
    body = cache.get(shared_cache_key("body", etag))
    RESOLVE_ANSWERS.labels("resolved" if body is None else "shared").inc()
    if body is None:
        resolved = config_resolve(
            environment=environment, service=service, user=user, position=position, revision=revision
        )
        if revision is None:
            position = Position(position.epoch, resolved.revision, position.token_generation)
        etag = resolve_etag(epoch=position.epoch, revision=resolved.revision, context=context, explain=explain)
        body = answer_body(resolved, explain=explain)
        shared_cache_set(shared_cache_key("body", etag), body)
    ANSWERS.put(position, request, (etag, body))
    return etag, body
