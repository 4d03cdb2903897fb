"""The audit log: HMAC-chained events written in the caller's transaction, and their verification."""

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .diff import canonical_json
from .metrics import AUDIT_EVENTS, PUBLISHES
from .models import AuditEvent, RegistryState
from .state import locked_state

logger = logging.getLogger(__name__)

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who acts (e.g. 'admin:alice', 'token:deploy-bot', 'cli') and from where (IP, 'manage.py').
    `may_write_security`: holds the dedicated right to change the registry's own security
    configuration (SPEC §12): a security:write token without limits, the admin permission, the CLI."""

    name: str
    source: str = ""
    may_write_security: bool = False


# The operator at a shell (manage.py): every command writes as this actor.
CLI_ACTOR = Actor("cli", "manage.py", may_write_security=True)


def secret_fingerprint(value: Any) -> str:
    """A keyed hash of a secret value: shows that it changed, never what it is."""
    canonical = canonical_json(value)
    return salted_hmac("config_registry.audit.secret", canonical, algorithm="sha256").hexdigest()[:32]


def _event_hash(
    *, seq: int, at: datetime, actor: str, action: str, target: str, source: str, changes: Any, prev_hash: str
) -> str:
    """HMAC-SHA256 of the event and its predecessor's hash, keyed with AUDIT_CHAIN_KEY (a bootstrap
    setting, never in the database): whoever can write the database cannot recompute the chain."""
    payload = json.dumps(
        [seq, at.astimezone(UTC).isoformat(), actor, action, target, source, changes, prev_hash],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hmac.new(settings.AUDIT_CHAIN_KEY.encode(), payload.encode(), hashlib.sha256).hexdigest()


def events_counted(action: str) -> None:
    AUDIT_EVENTS.labels(action).inc()
    if action in ("version.publish", "version.rollback"):
        PUBLISHES.labels(action).inc()


def _head_logged(seq: int, digest: str) -> None:
    # The head, outside the database: a log collector keeps what verify_audit --expect-head checks.
    logger.info("audit head %s:%s", seq, digest)


def audit_record(*, actor: Actor, action: str, target: str, changes: dict | None = None) -> AuditEvent:
    """Append an event; must run inside the transaction of the write it describes."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the write's transaction")
    state = locked_state()
    changes = changes or {}
    seq, at, prev_hash = state.audit_seq + 1, timezone.now(), state.audit_head or GENESIS
    fields = dict(seq=seq, at=at, actor=actor.name, action=action, target=target, source=actor.source, changes=changes)
    event = AuditEvent.objects.create(**fields, prev_hash=prev_hash, hash=_event_hash(**fields, prev_hash=prev_hash))
    state.audit_seq, state.audit_head = seq, event.hash
    state.save(update_fields=["audit_seq", "audit_head"])
    transaction.on_commit(lambda: _head_logged(seq, event.hash))
    transaction.on_commit(lambda: events_counted(action))
    return event


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit event #{self.seq}: {self.reason}"


def parse_head(text: str) -> tuple[int, str]:
    """'SEQ:HASH' (as verify_audit prints and the log records) -> (seq, hash). Raises ValueError."""
    seq, _, digest = text.strip().partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise ValueError(f"{text!r} is not a head of the form SEQ:HASH (as 'audit head' log lines show it)")
    return int(seq), digest


def audit_verify(expect_head: tuple[int, str] | None = None) -> tuple[int, BrokenLink | None]:
    """Walk the chain from the first event; return how many verified and the first broken link.
    `expect_head`: a head recorded outside the database earlier (seq, hash): the chain must still
    hold that event unchanged, so a cut tail (with the stored head wound back) is found too."""
    expected_seq, prev_hash, verified = 1, GENESIS, 0
    events = AuditEvent.objects.order_by("seq").iterator(chunk_size=2000)
    for event in events:
        if expect_head and event.seq == expect_head[0] and event.hash != expect_head[1]:
            return verified, BrokenLink(
                event.seq, "differs from the head recorded outside the database: the chain was rewritten from here on"
            )
        if event.seq != expected_seq:
            return verified, BrokenLink(
                expected_seq, f"missing (the next stored event is #{event.seq}): events were deleted"
            )
        if event.prev_hash != prev_hash:
            return verified, BrokenLink(event.seq, "does not link to the previous event: an earlier event was replaced")
        recomputed = _event_hash(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            target=event.target,
            source=event.source,
            changes=event.changes,
            prev_hash=event.prev_hash,
        )
        if recomputed != event.hash:
            return verified, BrokenLink(
                event.seq,
                f"its content does not match its hash: the event ({event.action} on {event.target}) was altered",
            )
        expected_seq, prev_hash, verified = event.seq + 1, event.hash, verified + 1
    head = RegistryState.objects.filter(pk=1).values_list("audit_seq", "audit_head").first() or (0, "")
    if head[0] > verified:
        return verified, BrokenLink(
            verified + 1, f"missing: the chain head says {head[0]} events exist, only {verified} are stored"
        )
    if verified and head[1] != prev_hash:
        return verified, BrokenLink(verified, "is not the head the registry recorded: events were cut from the tail")
    if expect_head and expect_head[0] > verified:
        return verified, BrokenLink(
            verified + 1,
            f"missing: the tail was cut (the head recorded outside the "
            f"database is #{expect_head[0]}, only {verified} are stored)",
        )
    return verified, None


def audit_head() -> str:
    """The chain's head as SEQ:HASH, to record outside the database."""
    seq, digest = RegistryState.objects.filter(pk=1).values_list("audit_seq", "audit_head").first() or (0, "")
    return f"{seq}:{digest or GENESIS}"
