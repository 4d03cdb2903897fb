"""Change requests (SPEC §11): writes to gated layers proposed, approved by others, applied once.

The gate itself is services._gate, under every write; this module is the one way through it: a
request is rehearsed when proposed or edited (the very publish, in a savepoint rolled back, so it is
refused for the same reasons a publish would be), and applied as that publish by its author, with
its approvers recorded in the version and the audit log. Every step is an audit event on
`change:<id>`.
"""

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import crypto, services
from .audit import Actor, audit_record
from .diff import Change
from .exceptions import ApprovalRequired, ChangeConflict, InvalidInput, NotFound, PermissionRefused, VersionConflict
from .models import ChangeApproval, ChangeKind, ChangeRequest, ChangeState, KeyDefinition, Layer, LayerVersion
from .services import Approved, approved_change, definition_required_approvals, definition_state, layer_settings

SCHEDULER_ACTOR = Actor("scheduler", "manage.py run_scheduler")

# What may change in a request of each kind (PATCH); the rest is fixed at its creation.
EDITABLE = {
    ChangeKind.PUBLISH: {"base_version", "set", "unset", "secrets", "comment", "publish_at"},
    ChangeKind.ROLLBACK: {"base_version", "to_version", "comment", "publish_at"},
    ChangeKind.SETTINGS: {"description", "priority", "required_approvals", "comment", "publish_at"},
    ChangeKind.DEFINITION: {"description", "schema", "secret", "default", "comment", "publish_at"},
}


def principal_of(actor: Actor) -> str:
    """Who an actor is, whatever door they came through: a person signed in to the admin and the
    same person's API session are one principal (so neither approves the other's request)."""
    kind, _, name = actor.name.partition(":")
    return f"person:{name}" if kind in ("admin", "user") and name else actor.name


@dataclass(frozen=True)
class Submitted:
    """What a submit did: published at once (`version`), or proposed (`change`)."""

    version: LayerVersion | None = None
    change: ChangeRequest | None = None


# Reading a request ------------------------------------------------------------------------------


def change_required_approvals(change: ChangeRequest) -> int:
    """The approvals it needs now: its layer's, or (a definition) those of the gated layers it reaches."""
    if change.layer_id is not None:
        return Layer.objects.values_list("required_approvals", flat=True).get(pk=change.layer_id)
    key = change.proposal["key"]
    current = definition_state(KeyDefinition.objects.filter(key=key).first())
    return definition_required_approvals(key, current, change.proposal)


def change_stale(change: ChangeRequest) -> bool:
    """Its target moved on since it was made (or last rebased): applying it would undo that."""
    if change.kind in (ChangeKind.PUBLISH, ChangeKind.ROLLBACK):
        return Layer.objects.values_list("current_version", flat=True).get(pk=change.layer_id) != change.base_version
    if change.kind == ChangeKind.SETTINGS:
        return layer_settings(Layer.objects.get(pk=change.layer_id)) != change.base_definition
    current = definition_state(KeyDefinition.objects.filter(key=change.proposal["key"]).first())
    return current != change.base_definition


def _place(change: ChangeRequest, key: str) -> crypto.Place:
    return crypto.Place(f"change:{change.uid}", key)


def _opened(change: ChangeRequest) -> dict[str, Any]:
    """The proposal with its secrets decrypted, as the publish it stands for takes it."""
    proposal = dict(change.proposal)
    if change.kind == ChangeKind.PUBLISH:
        sealed = proposal.pop("sealed", {})
        opened = {key: crypto.decrypt(text, place=_place(change, key), version=0) for key, text in sealed.items()}
        proposal["set"] = {**proposal.get("set", {}), **opened}
    return proposal


def _sealed(change: ChangeRequest, proposal: Mapping[str, Any]) -> dict[str, Any]:
    """The proposal as stored: a secret's value only as ciphertext bound to this request."""
    if change.kind != ChangeKind.PUBLISH:
        return dict(proposal)
    secrets = set(proposal.get("secrets", []))
    values = proposal.get("set", {})
    return {
        **proposal,
        "set": {key: value for key, value in values.items() if key not in secrets},
        "sealed": {
            key: crypto.encrypt(value, place=_place(change, key), version=0)
            for key, value in values.items()
            if key in secrets
        },
    }


# Performing what a request stands for ------------------------------------------------------------


def _shown(changes: Collection[Change]) -> list[dict[str, Any]]:
    return [{"key": change.key, **change.public()} for change in changes]


def _perform(change: ChangeRequest, proposal: Mapping[str, Any], author: Actor) -> tuple[list[dict], int | None]:
    """Do the write the request stands for, as `author`; (what it changed, the new version or None)."""
    if change.kind == ChangeKind.PUBLISH:
        version = services.version_publish(
            layer=change.layer,
            base_version=change.base_version,
            set_=proposal.get("set", {}),
            unset=proposal.get("unset", []),
            secrets=proposal.get("secrets", []),
            actor=author,
            comment=change.comment,
        )
        return _shown(version.changes), version.number
    if change.kind == ChangeKind.ROLLBACK:
        version = services.version_rollback(
            layer=change.layer,
            to_version=proposal["to_version"],
            base_version=change.base_version,
            actor=author,
            comment=change.comment,
        )
        return _shown(version.changes), version.number
    if change.kind == ChangeKind.SETTINGS:
        before = layer_settings(Layer.objects.get(pk=change.layer_id))
        services.layer_update(
            layer=change.layer,
            description=proposal["description"],
            priority=proposal["priority"],
            required_approvals=proposal["required_approvals"],
            actor=author,
        )
        shown = [
            {"key": name, "kind": "changed", "secret": False, "before": before[name], "after": proposal[name]}
            for name in ("description", "priority", "required_approvals")
            if before[name] != proposal[name]
        ]
        if not shown:
            raise InvalidInput(f"nothing to change: layer {change.target} already has these settings")
        return shown, None
    before = definition_state(KeyDefinition.objects.filter(key=proposal["key"]).first()) or {}
    extra = {"default": proposal["default"]} if proposal["has_default"] else {}
    services.key_definition_save(
        key=proposal["key"],
        description=proposal["description"],
        schema=proposal["schema"],
        secret=proposal["secret"],
        actor=author,
        **extra,
    )
    shown = [
        {"key": name, "kind": "changed", "secret": False, "before": before.get(name), "after": proposal[name]}
        for name in ("description", "schema", "secret", "has_default", "default")
        if before.get(name) != proposal[name]
    ]
    return shown, None


def _rehearse(change: ChangeRequest, proposal: Mapping[str, Any], author: Actor) -> list[dict]:
    """The write, done and rolled back: refused exactly as it would be, and what it would change."""
    savepoint = transaction.savepoint()
    try:
        with approved_change(Approved(change.target, None)):
            shown, _ = _perform(change, proposal, author)
    finally:
        transaction.savepoint_rollback(savepoint)
    return shown


def _base_of(change: ChangeRequest) -> None:
    if change.kind == ChangeKind.SETTINGS:
        change.base_definition = layer_settings(Layer.objects.get(pk=change.layer_id))
    elif change.kind == ChangeKind.DEFINITION:
        change.base_definition = definition_state(KeyDefinition.objects.filter(key=change.proposal["key"]).first())


def _check_publish_at(publish_at: Any) -> None:
    if publish_at is not None and (not isinstance(publish_at, datetime) or timezone.is_naive(publish_at)):
        raise InvalidInput("invalid change request", {"publish_at": "must be a date and time with its time zone"})


# Proposing ------------------------------------------------------------------------------------


@transaction.atomic
def change_propose(
    *,
    kind: str,
    actor: Actor,
    proposal: Mapping[str, Any],
    layer: Layer | None = None,
    base_version: int | None = None,
    comment: str = "",
    publish_at: datetime | None = None,
) -> ChangeRequest:
    """A new open change request, checked as its write would be (InvalidInput, VersionConflict,
    PermissionRefused as that write raises them); its secrets sealed; audited."""
    _check_publish_at(publish_at)
    if not isinstance(comment, str):
        raise InvalidInput("invalid change request", {"comment": "must be text"})
    target = layer.ref if layer is not None else f"key:{proposal['key']}"
    change = ChangeRequest(
        kind=kind,
        layer=layer,
        target=target,
        base_version=layer.current_version if base_version is None and layer is not None else (base_version or 0),
        comment=comment,
        author=actor.name,
        author_principal=principal_of(actor),
        author_may_write_security=actor.may_write_security,
        publish_at=publish_at,
        proposal=dict(proposal),
    )
    _base_of(change)
    change.changes = _rehearse(change, proposal, actor)
    change.proposal = _sealed(change, proposal)
    change.save()
    audit_record(
        actor=actor,
        action="change.create",
        target=f"change:{change.pk}",
        changes=_audited(change),
    )
    return change


def _audited(change: ChangeRequest, **extra) -> dict[str, Any]:
    """A request as the audit log keeps it: what and where, never a secret's value."""
    return {
        "change_request": change.pk,
        "kind": change.kind,
        "target": change.target,
        "base_version": change.base_version,
        "publish_at": change.publish_at.isoformat() if change.publish_at else None,
        "keys": change.changes,
        **extra,
    }


def _submit(propose: Callable[[], ChangeRequest], write: Callable[[], LayerVersion | None], gated: bool) -> Submitted:
    """Write at once, or propose when the target is gated (or the write is scheduled)."""
    if gated:
        return Submitted(change=propose())
    try:
        with transaction.atomic():
            return Submitted(version=write())
    except ApprovalRequired:  # gated between the look and the write
        return Submitted(change=propose())


def version_submit(
    *,
    layer: Layer,
    base_version: int,
    set_: Mapping[str, Any],
    unset: Collection[str] = (),
    secrets: Collection[str] = (),
    actor: Actor,
    comment: str = "",
    publish_at: datetime | None = None,
) -> Submitted:
    """version_publish, or on a gated layer (or with `publish_at`) the change request for it."""
    proposal = {
        "set": dict(set_) if isinstance(set_, Mapping) else set_,
        "unset": list(unset),
        "secrets": list(secrets),
    }
    return _submit(
        lambda: change_propose(
            kind=ChangeKind.PUBLISH,
            layer=layer,
            base_version=base_version,
            proposal=proposal,
            comment=comment,
            actor=actor,
            publish_at=publish_at,
        ),
        lambda: services.version_publish(
            layer=layer,
            base_version=base_version,
            set_=set_,
            unset=unset,
            secrets=secrets,
            actor=actor,
            comment=comment,
        ),
        bool(layer.required_approvals or publish_at),
    )


def rollback_submit(
    *,
    layer: Layer,
    to_version: int,
    base_version: int,
    actor: Actor,
    comment: str = "",
    publish_at: datetime | None = None,
) -> Submitted:
    """version_rollback, or on a gated layer (or with `publish_at`) the change request for it."""
    return _submit(
        lambda: change_propose(
            kind=ChangeKind.ROLLBACK,
            layer=layer,
            base_version=base_version,
            proposal={"to_version": to_version},
            comment=comment or f"Rollback to version {to_version}",
            actor=actor,
            publish_at=publish_at,
        ),
        lambda: services.version_rollback(
            layer=layer, to_version=to_version, base_version=base_version, actor=actor, comment=comment
        ),
        bool(layer.required_approvals or publish_at),
    )


def settings_submit(
    *,
    layer: Layer,
    description: str,
    priority: int,
    required_approvals: int,
    actor: Actor,
    comment: str = "",
    publish_at: datetime | None = None,
) -> Submitted:
    """layer_update; on a gated layer a change of priority or required approvals is proposed."""
    proposal = {"description": description, "priority": priority, "required_approvals": required_approvals}
    moves = (layer.priority, layer.required_approvals) != (priority, required_approvals)

    def write() -> None:
        services.layer_update(
            layer=layer,
            description=description,
            priority=priority,
            required_approvals=required_approvals,
            actor=actor,
        )

    return _submit(
        lambda: change_propose(
            kind=ChangeKind.SETTINGS,
            layer=layer,
            proposal=proposal,
            comment=comment,
            actor=actor,
            publish_at=publish_at,
        ),
        write,
        bool((layer.required_approvals and moves) or publish_at),
    )


def definition_submit(
    *,
    key: str,
    description: str = "",
    schema: Any = None,
    secret: bool = False,
    default: Any = services._MISSING,
    actor: Actor,
    comment: str = "",
) -> Submitted:
    """key_definition_save, or the change request for it when gated layers depend on the change."""
    errors = services.key_definition_problems(key=key, schema=schema, secret=secret, default=default)
    if errors:
        raise InvalidInput(f"invalid key definition for {key!r}", errors)
    has_default = default is not services._MISSING
    proposal = {
        "key": key,
        "description": description,
        "schema": schema,
        "secret": secret,
        "has_default": has_default,
        "default": default if has_default else None,
    }
    current = definition_state(KeyDefinition.objects.filter(key=key).first())
    extra = {"default": default} if has_default else {}
    return _submit(
        lambda: change_propose(kind=ChangeKind.DEFINITION, proposal=proposal, comment=comment, actor=actor),
        lambda: services.key_definition_save(
            key=key, description=description, schema=schema, secret=secret, actor=actor, **extra
        ),
        definition_required_approvals(key, current, proposal) > 0,
    )


@transaction.atomic
def env_import_submit(
    *,
    ref: str,
    entries: Mapping[str, Any],
    secrets: Collection[str],
    actor: Actor,
    base_version: int | None = None,
    comment: str = "",
) -> Submitted:
    """services.env_import, or on a gated layer the change request for the same publish."""
    from .validation import parse_layer_ref

    level, name = parse_layer_ref(ref)
    layer = Layer.objects.filter(level=level, name=name).first()
    if layer is None or not layer.required_approvals:
        return Submitted(
            version=services.env_import(
                ref=ref, entries=entries, secrets=secrets, actor=actor, base_version=base_version, comment=comment
            )
        )
    return version_submit(
        layer=layer,
        base_version=layer.current_version if base_version is None else base_version,
        set_=dict(entries),
        secrets=list(secrets),
        actor=actor,
        comment=comment,
    )


# Reviewing ------------------------------------------------------------------------------------


def _locked_open(change: ChangeRequest) -> ChangeRequest:
    locked = ChangeRequest.objects.select_for_update(of=("self",)).select_related("layer").get(pk=change.pk)
    if locked.state != ChangeState.OPEN:
        raise ChangeConflict(
            f"change request #{locked.pk} is {locked.state}: only an open request can change", state=locked.state
        )
    return locked


def _stale_refusal(change: ChangeRequest) -> ChangeConflict:
    where = (
        f"layer {change.target} is at version {change.layer.current_version}, the request was made from "
        f"version {change.base_version}"
        if change.kind in (ChangeKind.PUBLISH, ChangeKind.ROLLBACK)
        else f"{change.target} changed since the request was made"
    )
    return ChangeConflict(
        f"change request #{change.pk} is stale: {where}; rebase it by editing (PATCH its base_version, "
        "or 'Rebase' in the admin), which asks for its approvals again",
        state=change.state,
        stale=True,
    )


@transaction.atomic
def change_edit(*, change: ChangeRequest, actor: Actor, **fields: Any) -> ChangeRequest:
    """Its author changes it (a rebase is an edit of base_version): checked again, approvals voided."""
    change = _locked_open(change)
    if principal_of(actor) != change.author_principal:
        raise PermissionRefused(
            f"only the author of change request #{change.pk} ({change.author}) may edit it: submit your own instead"
        )
    unknown = sorted(set(fields) - EDITABLE[change.kind])
    if unknown:
        raise InvalidInput(
            "invalid edit", dict.fromkeys(unknown, f"cannot be edited in a {change.kind} change request")
        )
    proposal = _opened(change)
    if "set" in fields:  # a new set replaces the old one, with its own secrets list
        proposal["secrets"] = []
    for name in EDITABLE[change.kind] - {"base_version", "comment", "publish_at"}:
        if name in fields:
            proposal[name] = fields[name]
    if change.kind == ChangeKind.DEFINITION and "default" in fields:
        proposal["has_default"] = fields["default"] is not services._MISSING
        proposal["default"] = None if fields["default"] is services._MISSING else fields["default"]
    if "publish_at" in fields:
        _check_publish_at(fields["publish_at"])
        change.publish_at = fields["publish_at"]
    if "comment" in fields:
        change.comment = fields["comment"]
    if "base_version" in fields:
        change.base_version = fields["base_version"]
    if change.kind in (ChangeKind.SETTINGS, ChangeKind.DEFINITION):
        _base_of(change)  # these rebase on what is there now
    change.changes = _rehearse(change, proposal, actor)
    change.proposal = _sealed(change, proposal)
    voided = [approval.name for approval in change.approvals.all()]
    change.approvals.all().delete()
    change.last_error = ""
    change.save()
    only_schedule = set(fields) == {"publish_at"}
    audit_record(
        actor=actor,
        action="change.reschedule" if only_schedule else "change.edit",
        target=f"change:{change.pk}",
        changes=_audited(change, voided_approvals=voided),
    )
    return change


@transaction.atomic
def change_approve(*, change: ChangeRequest, actor: Actor, now: datetime | None = None) -> ChangeRequest:
    """An approval by a principal other than its author; with enough of them and its time come, it
    is applied at once (if applying fails, the approval stays and the reason is kept)."""
    change = _locked_open(change)
    if principal_of(actor) == change.author_principal:
        raise PermissionRefused(f"you are the author of change request #{change.pk}: it needs approval by someone else")
    if change_stale(change):
        raise _stale_refusal(change)
    if change.approvals.filter(principal=principal_of(actor)).exists():
        raise ChangeConflict(f"you have already approved change request #{change.pk}", state=change.state)
    ChangeApproval.objects.create(change=change, principal=principal_of(actor), name=actor.name)
    count, required = change.approvals.count(), change_required_approvals(change)
    audit_record(
        actor=actor,
        action="change.approve",
        target=f"change:{change.pk}",
        changes={"change_request": change.pk, "target": change.target, "approvals": count, "required": required},
    )
    now = now or timezone.now()
    if count >= required and (change.publish_at is None or change.publish_at <= now):
        try:
            with transaction.atomic():
                return _apply_locked(change, actor, now)
        except (InvalidInput, PermissionRefused, ChangeConflict, NotFound) as error:
            change.last_error = str(error)
            change.save(update_fields=["last_error", "updated_at"])
    return change


@transaction.atomic
def change_reject(*, change: ChangeRequest, actor: Actor, reason: str = "") -> ChangeRequest:
    """Close it unapplied (by a reviewer, or its author withdrawing it)."""
    change = _locked_open(change)
    if not isinstance(reason, str):
        raise InvalidInput("invalid rejection", {"reason": "must be text"})
    change.state, change.decided_by, change.decided_at = ChangeState.REJECTED, actor.name, timezone.now()
    change.save()
    audit_record(
        actor=actor,
        action="change.reject",
        target=f"change:{change.pk}",
        changes={"change_request": change.pk, "target": change.target, "reason": reason},
    )
    return change


# Applying -------------------------------------------------------------------------------------


@transaction.atomic
def change_apply(*, change: ChangeRequest, actor: Actor, now: datetime | None = None) -> ChangeRequest:
    """Apply an approved request whose time has come: ChangeConflict (409) if it lacks approvals, is
    scheduled later, or is stale."""
    return _apply_locked(_locked_open(change), actor, now or timezone.now())


def _apply_locked(change: ChangeRequest, actor: Actor, now: datetime) -> ChangeRequest:
    if change_stale(change):
        raise _stale_refusal(change)
    approvals = list(change.approvals.all())
    required = change_required_approvals(change)
    if len(approvals) < required:
        raise ChangeConflict(
            f"change request #{change.pk} has {len(approvals)} of the {required} approval(s) {change.target} needs",
            state=change.state,
        )
    if change.publish_at and change.publish_at > now:
        raise ChangeConflict(
            f"change request #{change.pk} is scheduled for {change.publish_at.isoformat()}: run_scheduler applies it "
            "then (edit publish_at to move it)",
            state=change.state,
        )
    author = Actor(change.author, actor.source, may_write_security=change.author_may_write_security)
    approvers = tuple(approval.name for approval in approvals)
    try:
        with approved_change(Approved(change.target, change.pk, approvers)):
            change.changes, change.applied_version = _perform(change, _opened(change), author)
    except VersionConflict:
        raise _stale_refusal(change) from None
    change.state, change.decided_by, change.decided_at, change.last_error = ChangeState.APPLIED, actor.name, now, ""
    change.save()
    audit_record(
        actor=actor,
        action="change.apply",
        target=f"change:{change.pk}",
        changes=_audited(change, author=change.author, approved_by=list(approvers), version=change.applied_version),
    )
    return change


def changes_apply_due(
    *,
    actor: Actor = SCHEDULER_ACTOR,
    now: datetime | None = None,
    on_locked: Callable[[ChangeRequest], None] | None = None,
) -> list[ChangeRequest]:
    """Apply every open request whose publish_at has come and that has its approvals, each in its own
    transaction. Row locks with SKIP LOCKED: several schedulers at once apply each request once, and
    none waits for a request another is applying. A due request that cannot be applied keeps the
    reason in last_error (audited once per reason). `on_locked`: a test's hook, called holding the lock."""
    now = now or timezone.now()
    applied, seen = [], set()
    while True:
        with transaction.atomic():
            change = (
                ChangeRequest.objects.select_for_update(skip_locked=True)
                .filter(state=ChangeState.OPEN, publish_at__lte=now)
                .exclude(pk__in=seen)
                .order_by("publish_at", "pk")
                .first()
            )
            if change is None:
                return applied
            seen.add(change.pk)
            if on_locked is not None:
                on_locked(change)
            if len(change.approvals.all()) < change_required_approvals(change):
                continue  # not approved yet: it waits, silently
            try:
                with transaction.atomic():
                    applied.append(_apply_locked(change, actor, now))
            except (InvalidInput, PermissionRefused, ChangeConflict, NotFound) as error:
                if change.last_error != str(error):
                    change.last_error = str(error)
                    change.save(update_fields=["last_error", "updated_at"])
                    audit_record(
                        actor=actor,
                        action="change.apply_failed",
                        target=f"change:{change.pk}",
                        changes={"change_request": change.pk, "target": change.target, "reason": str(error)},
                    )
