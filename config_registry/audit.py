"""The audit log: hash-chained events written in the caller's transaction, and their verification."""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .models import AuditEvent, RegistryState

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who acts (e.g. 'admin:alice', 'token:deploy-bot', 'cli') and from where (IP, 'manage.py')."""

    name: str
    source: str = ""


def secret_fingerprint(value: Any) -> str:
    """A keyed hash of a secret value: shows that it changed, never what it is."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return salted_hmac("config_registry.audit.secret", canonical, algorithm="sha256").hexdigest()[:32]


def locked_state() -> RegistryState:
    """The registry's singleton row, locked until the current transaction ends."""
    state, _ = RegistryState.objects.select_for_update().get_or_create(pk=1)
    # Whatever moved, every process learns at once: one announcement per transaction, however many
    # times it takes the lock (a publish does twice: its version, its audit event).
    if not any(callback is _committed_position_publish for _, callback, _ in transaction.get_connection().run_on_commit):
        transaction.on_commit(_committed_position_publish)
    return state


def _committed_position_publish() -> None:
    from .selectors import committed_position_publish  # selectors import this module

    committed_position_publish()


def _event_hash(*, seq: int, at: datetime, actor: str, action: str, target: str, source: str,
                changes: Any, prev_hash: str) -> str:
    payload = json.dumps(
        [seq, at.astimezone(UTC).isoformat(), actor, action, target, source, changes, prev_hash],
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def audit_record(*, actor: Actor, action: str, target: str, changes: dict | None = None) -> AuditEvent:
    """Append an event; must run inside the transaction of the write it describes."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the write's transaction")
    state = locked_state()
    changes = changes or {}
    seq, at, prev_hash = state.audit_seq + 1, timezone.now(), state.audit_head or GENESIS
    fields = dict(seq=seq, at=at, actor=actor.name, action=action, target=target,
                  source=actor.source, changes=changes)
    event = AuditEvent.objects.create(**fields, prev_hash=prev_hash,
                                      hash=_event_hash(**fields, prev_hash=prev_hash))
    state.audit_seq, state.audit_head = seq, event.hash
    state.save(update_fields=["audit_seq", "audit_head"])
    return event


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit event #{self.seq}: {self.reason}"


def audit_verify() -> tuple[int, BrokenLink | None]:
    """Walk the chain from the first event; return how many verified and the first broken link."""
    expected_seq, prev_hash, verified = 1, GENESIS, 0
    events = AuditEvent.objects.order_by("seq").iterator(chunk_size=2000)
    for event in events:
        if event.seq != expected_seq:
            return verified, BrokenLink(expected_seq, f"missing (the next stored event is #{event.seq}): "
                                                      "events were deleted")
        if event.prev_hash != prev_hash:
            return verified, BrokenLink(event.seq, "does not link to the previous event: "
                                                   "an earlier event was replaced")
        recomputed = _event_hash(seq=event.seq, at=event.at, actor=event.actor, action=event.action,
                                 target=event.target, source=event.source, changes=event.changes,
                                 prev_hash=event.prev_hash)
        if recomputed != event.hash:
            return verified, BrokenLink(event.seq, f"its content does not match its hash: the event "
                                                   f"({event.action} on {event.target}) was altered")
        expected_seq, prev_hash, verified = event.seq + 1, event.hash, verified + 1
    head = RegistryState.objects.filter(pk=1).values_list("audit_seq", flat=True).first() or 0
    if head > verified:
        return verified, BrokenLink(verified + 1, f"missing: the chain head says {head} events exist, "
                                                  f"only {verified} are stored")
    return verified, None
