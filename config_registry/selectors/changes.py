"""Reads of change requests (SPEC §11): as callers see them (secrets masked), and the scheduler's beat."""

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..diff import MASK
from ..models import AuditEvent, ChangeRequest, ChangeState, SchedulerBeat
from .versions import layer_reach

SCHEDULER_SILENT_AFTER = timedelta(minutes=1)  # no beat for this long: the admin says no scheduler runs


def changes_list(*, state: str | None = None, target: str | None = None) -> QuerySet[ChangeRequest]:
    changes = ChangeRequest.objects.select_related("layer").prefetch_related("approvals").order_by("-pk")
    if state:
        changes = changes.filter(state=state)
    if target:
        changes = changes.filter(target=target)
    return changes


def change_reach(change: ChangeRequest) -> tuple[int, str]:
    """How many active users it reaches, in numbers and words (a key definition reaches everyone)."""
    if change.layer is not None:
        return layer_reach(change.layer)
    return get_user_model().objects.filter(is_active=True).count(), "every user whose configuration has the key"


def proposal_shown(change: ChangeRequest) -> dict[str, Any]:
    """The proposal as anyone may see it: a secret's value never, only that it is set."""
    proposal = {key: value for key, value in change.proposal.items() if key != "sealed"}
    if "sealed" in change.proposal:
        proposal["set"] = {**proposal.get("set", {}), **dict.fromkeys(change.proposal["sealed"], MASK)}
    return proposal


def change_shown(change: ChangeRequest) -> dict[str, Any]:
    from ..changes import change_required_approvals, change_stale

    users, _ = change_reach(change)
    is_open = change.state == ChangeState.OPEN
    return {
        "id": change.pk,
        "kind": change.kind,
        "target": change.target,
        "state": change.state,
        "stale": is_open and change_stale(change),
        "base_version": change.base_version,
        "proposal": proposal_shown(change),
        "changes": change.changes,
        "comment": change.comment,
        "author": change.author,
        "created_at": change.created_at,
        "updated_at": change.updated_at,
        "publish_at": change.publish_at,
        "required_approvals": change_required_approvals(change),
        "approvals": [{"by": approval.name, "at": approval.at} for approval in change.approvals.all()],
        "impact": {"users": users},
        "applied_version": change.applied_version,
        "decided_by": change.decided_by,
        "decided_at": change.decided_at,
        "last_error": change.last_error,
    }


def change_audit(change_id: int) -> QuerySet[AuditEvent]:
    """Every audit event of one change request: its steps, and the publish that applied it."""
    return AuditEvent.objects.filter(Q(target=f"change:{change_id}") | Q(changes__change_request=change_id))


def scheduler_beat() -> SchedulerBeat | None:
    """The most recent beat of any run_scheduler process."""
    return SchedulerBeat.objects.order_by("-beat_at").first()


def scheduler_silent(beat: SchedulerBeat | None) -> bool:
    return beat is None or timezone.now() - beat.beat_at > SCHEDULER_SILENT_AFTER
