"""Storage of the registry: layers, immutable versions and entries, key definitions, tokens, audit.

No business logic here: writes go through config_registry.services, reads through selectors.
"""

import json
import uuid

from django.conf import settings
from django.db import models

from .limits import json_problem, suspicious_json_text


class ImmutableRecord(Exception):
    """Raised when code tries to edit or delete a record that history depends on."""


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableRecord(f"{self.model.__name__} records are immutable: publish a new version")

    def delete(self):
        raise ImmutableRecord(f"{self.model.__name__} records are immutable and cannot be deleted")


class ImmutableModel(models.Model):
    """Insert-only: saving an existing row or deleting one raises ImmutableRecord."""

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableRecord(f"{type(self).__name__} #{self.pk} is immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableRecord(f"{type(self).__name__} #{self.pk} is immutable and cannot be deleted")


READ_MAX_DEPTH = 200  # deeper than this, a stored value is not handed on (pickling and encoding it could fail)


class StoredJSONField(models.JSONField):
    """A JSONField whose rows can always be read: a value stored by an older release beyond today's
    limits (nested hundreds deep, a lone surrogate) reads as a marker string naming the problem,
    instead of failing every read, history page and audit view that touches it (SPEC §12)."""

    def from_db_value(self, value, expression, connection):
        if not (isinstance(value, str) and suspicious_json_text(value)):
            return super().from_db_value(value, expression, connection)
        try:
            decoded = super().from_db_value(value, expression, connection)
        except RecursionError:
            return unreadable_marker(f"nested deeper than {READ_MAX_DEPTH}")
        problem = json_problem(decoded, max_depth=READ_MAX_DEPTH)
        return unreadable_marker(problem) if problem else decoded


def unreadable_marker(problem: str) -> str:
    return f"<unreadable stored value: {problem}>"


class Level(models.TextChoices):
    """Precedence levels, lowest first."""

    GLOBAL = "global", "Global"
    ENVIRONMENT = "environment", "Environment"
    SERVICE = "service", "Service"
    GROUP = "group", "Group"
    USER = "user", "User"


class Layer(models.Model):
    level = models.CharField(max_length=16, choices=Level.choices)
    name = models.CharField(max_length=150, blank=True, help_text="Empty for the global layer.")
    description = models.TextField(blank=True)
    priority = models.IntegerField(
        default=0,
        help_text="Group layers only: a user in several groups gets them lowest priority first, "
        "so the group with the highest priority wins.",
    )
    required_approvals = models.PositiveSmallIntegerField(
        default=0,
        help_text="Approvals by someone other than the author that every change needs (0: none; SPEC §11). "
        "Changing it on a gated layer needs those approvals too.",
    )
    current_version = models.PositiveIntegerField(default=0, editable=False)
    current_bytes = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Size of the current entries (the layer size limit), kept by each publish."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(null=True, editable=False)
    updated_by = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["level", "name"], name="layer_unique_ref")]
        ordering = ["level", "name"]
        permissions = [
            ("reveal_secret", "Can reveal secret values, one at a time (audited)"),
            ("change_security_config", "Can change the registry's security configuration (chat.signing_keys)"),
        ]

    def __str__(self) -> str:
        return self.ref

    @property
    def ref(self) -> str:
        return self.level if self.level == Level.GLOBAL else f"{self.level}:{self.name}"


class LayerVersion(ImmutableModel):
    """One published state of a layer, never edited afterwards; its entries are those valid at its number."""

    layer = models.ForeignKey(Layer, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    revision = models.PositiveBigIntegerField(db_index=True, help_text="Global revision it was published at.")
    author = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    comment = models.TextField(blank=True)
    rolled_back_from = models.PositiveIntegerField(null=True, blank=True)
    change_request = models.PositiveIntegerField(null=True, blank=True, help_text="The change request it applied.")
    approved_by = models.JSONField(default=list, blank=True, help_text="Who approved it (its change request's).")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["layer", "number"], name="version_unique_number"),
        ]
        ordering = ["layer", "number"]

    def __str__(self) -> str:
        return f"{self.layer.ref} v{self.number}"


class EntryQuerySet(ImmutableQuerySet):
    def at(self, layer_id: int, number: int) -> "EntryQuerySet":
        """The entries of version `number` of a layer: one indexed query, whatever its history."""
        return self.filter(_valid_at(layer_id, number))

    def at_each(self, numbers: dict[int, int]) -> "EntryQuerySet":
        """The entries of several layers, each at its own version number ({layer id: number}), in
        one query with one condition per distinct number (thousands of users' layers have few)."""
        by_number: dict[int, list[int]] = {}
        for layer_id, number in numbers.items():
            by_number.setdefault(number, []).append(layer_id)
        condition = models.Q(pk__in=[])
        for number, layer_ids in by_number.items():
            condition |= models.Q(layer_id__in=layer_ids, valid_from__lte=number) & (
                models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=number)
            )
        return self.filter(condition)

    def close(self, *, entry_ids: list[int], at: int) -> None:
        """The one change a version makes to older rows: these entries stop holding at version `at`.
        Only once: a row already closed is left as it is (and the count tells the caller)."""
        closed = models.QuerySet.update(self.filter(pk__in=entry_ids, valid_to__isnull=True), valid_to=at)
        if closed != len(entry_ids):
            raise ImmutableRecord(f"{len(entry_ids) - closed} of the entries to close were closed already")

    def rewrap(self, *, entry_id: int, ciphertext: str) -> None:
        """The other permitted change: re-encrypting a secret under a new key (rotate_keys)."""
        models.QuerySet.update(self.filter(pk=entry_id, secret=True), ciphertext=ciphertext)


def _valid_at(layer_id: int, number: int) -> models.Q:
    return models.Q(layer_id=layer_id, valid_from__lte=number) & (
        models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=number)
    )


class Entry(ImmutableModel):
    """key -> JSON value of a layer from version `valid_from` (the version that wrote it) until the
    version `valid_to` that replaced or removed it (None: still current). A version stores only
    what it changed; its complete entry set is the rows valid at its number (EntryQuerySet.at).
    Secrets keep only ciphertext, bound to layer, key and `valid_from`."""

    version = models.ForeignKey(LayerVersion, on_delete=models.PROTECT, related_name="entries")
    layer = models.ForeignKey(Layer, on_delete=models.PROTECT, related_name="entry_rows")
    valid_from = models.PositiveIntegerField(help_text="The version that wrote this entry.")
    valid_to = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version that replaced or removed it; empty while it is current."
    )
    key = models.CharField(max_length=200)
    value = StoredJSONField(null=True, blank=True, help_text="Empty for secrets.")
    ciphertext = models.TextField(blank=True, help_text="Secrets only: Fernet token bound to layer and key.")
    secret = models.BooleanField(default=False)

    objects = EntryQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="entry_unique_key"),
            models.UniqueConstraint(
                fields=["layer", "key"], condition=models.Q(valid_to__isnull=True), name="entry_one_current_per_key"
            ),
            models.CheckConstraint(
                condition=models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=models.F("valid_from")),
                name="entry_valid_range",
            ),
            models.CheckConstraint(
                condition=(models.Q(secret=True, value__isnull=True) & ~models.Q(ciphertext=""))
                | models.Q(secret=False, ciphertext=""),
                name="entry_secret_has_only_ciphertext",
            ),
        ]
        indexes = [models.Index(fields=["layer", "valid_from"], name="entry_layer_from")]
        ordering = ["key"]
        verbose_name_plural = "entries"

    def __str__(self) -> str:
        return self.key

    def size(self) -> int:
        """What the entry counts towards its layer's size limit: compact JSON, or its ciphertext."""
        return len(self.ciphertext) if self.secret else len(json.dumps(self.value, separators=(",", ":")))


class KeyDefinition(models.Model):
    """Optional contract for one key: description, JSON Schema, secret-ness, default."""

    key = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    schema = StoredJSONField(null=True, blank=True, help_text="JSON Schema the value must satisfy.")
    secret = models.BooleanField(default=False, help_text="Values of this key are always encrypted.")
    has_default = models.BooleanField(default=False)
    default = StoredJSONField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class RegistryState(models.Model):
    """Singleton row: the global revision and the head of the audit chain.

    Writers lock it last (after any layer row), so publishes get contiguous revisions and
    audit events a gap-free, hash-chained sequence.
    """

    revision = models.PositiveBigIntegerField(default=0)
    # New whenever the state row is recreated (a restored or flushed database), so that caches
    # keyed by revision never mistake a reused revision number for the one they saw.
    epoch = models.UUIDField(default=uuid.uuid4, editable=False)
    # Moves whenever any service token changes, so processes can keep tokens in memory and
    # know, from the same read as the revision, when to forget them.
    token_generation = models.PositiveBigIntegerField(default=0)
    audit_seq = models.PositiveBigIntegerField(default=0)
    audit_head = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"revision {self.revision}, audit #{self.audit_seq}"


class Scope(models.TextChoices):
    CONFIG_READ = "config:read", "Read resolved configuration"
    SECRETS_READ = "secrets:read", "Reveal secret values"
    CONFIG_WRITE = "config:write", "Create layers, publish and roll back versions"
    AUDIT_READ = "audit:read", "Read the audit log"
    CHAT_TICKET = "chat:ticket", "Issue chat tickets for users"
    SECURITY_WRITE = "security:write", "Change the registry's own security configuration (chat.signing_keys)"
    METRICS_READ = "metrics:read", "Read the Prometheus metrics at /metrics"
    CHANGES_APPROVE = "changes:approve", "Approve or reject change requests (never one's own)"


class ServiceToken(models.Model):
    """A named API credential. Only a SHA-256 of the token is stored; it is shown once."""

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    environments = models.JSONField(default=list, blank=True, help_text="Empty: every environment.")
    services = models.JSONField(default=list, blank=True, help_text="Empty: every service.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        permissions = [("grant_chat_ticket", "Can create tokens that issue chat tickets for any user")]

    def __str__(self) -> str:
        return self.name


class AuditEvent(ImmutableModel):
    """Who did what, when, from where. Hash-chained: each event's hash covers the previous one's."""

    seq = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=300, db_index=True)
    source = models.CharField(max_length=200, blank=True)
    changes = StoredJSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target} by {self.actor}"


# What resolution reads besides layer versions, recorded by revision (SPEC §8: time travel). Each
# row holds from revision `valid_from` until `valid_to` (None: still); rows are only added, and
# closed once.


class HistoryQuerySet(models.QuerySet):
    def at(self, revision: int) -> "HistoryQuerySet":
        return self.filter(
            models.Q(valid_from__lte=revision) & (models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=revision))
        )

    def current(self) -> "HistoryQuerySet":
        return self.filter(valid_to__isnull=True)


class MembershipRecord(models.Model):
    """A user's membership of a group, over a range of revisions."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="+")
    valid_from = models.PositiveBigIntegerField()
    valid_to = models.PositiveBigIntegerField(null=True, blank=True)

    objects = HistoryQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["user", "valid_from"], name="membership_user_from"),
            # What changed between two revisions (selectors.people: overlays carried to a later revision).
            models.Index(fields=["valid_from"], name="membership_from"),
            models.Index(fields=["valid_to"], name="membership_to"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "group"], condition=models.Q(valid_to__isnull=True), name="membership_one_current"
            )
        ]

    def __str__(self) -> str:
        return f"user #{self.user_id} in group #{self.group_id} from revision {self.valid_from}"


class PriorityRecord(models.Model):
    """A group layer's priority over a range of revisions."""

    layer = models.ForeignKey(Layer, on_delete=models.CASCADE, related_name="+")
    priority = models.IntegerField()
    valid_from = models.PositiveBigIntegerField()
    valid_to = models.PositiveBigIntegerField(null=True, blank=True)

    objects = HistoryQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["layer", "valid_from"], name="priority_layer_from")]

    def __str__(self) -> str:
        return f"priority {self.priority} of layer #{self.layer_id} from revision {self.valid_from}"


class DefaultRecord(models.Model):
    """A key definition's default over a range of revisions (absent: the key had none)."""

    key = models.CharField(max_length=200)
    default = StoredJSONField(null=True, blank=True)
    valid_from = models.PositiveBigIntegerField()
    valid_to = models.PositiveBigIntegerField(null=True, blank=True)

    objects = HistoryQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["key", "valid_from"], name="default_key_from")]

    def __str__(self) -> str:
        return f"default of {self.key} from revision {self.valid_from}"


class RevisionMark(models.Model):
    """When each revision was made: `at=` questions (SPEC §8) find the last revision at or before a time."""

    revision = models.PositiveBigIntegerField(primary_key=True)
    at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"revision {self.revision} at {self.at.isoformat()}"


class ContextUsage(models.Model):
    """How often, and when last, a token was served one context's configuration: counted in each
    process and written about once a minute (config_registry.usage), never once per request. Which
    keys a context serves is its resolution: per-key usage is derived from these rows."""

    token = models.ForeignKey(ServiceToken, on_delete=models.CASCADE, related_name="usage")
    environment = models.CharField(max_length=150)
    service = models.CharField(max_length=150)
    user = models.CharField(max_length=150, blank=True, help_text="Empty: the service's own view.")
    served = models.BigIntegerField(default=0)
    last_served_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "environment", "service", "user"], name="usage_unique_context")
        ]
        indexes = [models.Index(fields=["last_served_at"], name="usage_last_served")]

    def __str__(self) -> str:
        return f"{self.token.name}: {self.environment}/{self.service}" + (f"/{self.user}" if self.user else "")


class ChangeKind(models.TextChoices):
    PUBLISH = "publish", "Publish"
    ROLLBACK = "rollback", "Rollback"
    SETTINGS = "settings", "Layer settings"
    DEFINITION = "definition", "Key definition"


class ChangeState(models.TextChoices):
    OPEN = "open", "Open"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"


class ChangeRequest(models.Model):
    """A proposed change to a gated layer (or to a key definition that gated layers depend on),
    applied once enough others approved it and its `publish_at` has come (SPEC §11).

    `proposal` by kind: publish {"set", "sealed", "unset", "secrets"} (a secret's proposed value only
    as ciphertext in `sealed`, bound to this request), rollback {"to_version"}, settings
    {"description", "priority", "required_approvals"}, definition {"key", "description", "schema",
    "secret", "has_default", "default"}. `base` is what it was made from: the layer's version, or the
    definition's state; when the target moved on, the request is stale."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=ChangeKind.choices)
    layer = models.ForeignKey(Layer, null=True, blank=True, on_delete=models.PROTECT, related_name="change_requests")
    target = models.CharField(max_length=300, db_index=True, help_text="The layer's ref, or key:<key>.")
    base_version = models.PositiveIntegerField(default=0)
    base_definition = models.JSONField(null=True, blank=True)
    proposal = models.JSONField(default=dict)
    changes = models.JSONField(default=list, help_text="What it changes, as shown (secrets only as changed).")
    comment = models.TextField(blank=True)
    author = models.CharField(max_length=200)
    author_principal = models.CharField(max_length=200, help_text="The author as a principal (person or token).")
    author_may_write_security = models.BooleanField(default=False)
    publish_at = models.DateTimeField(null=True, blank=True, db_index=True)
    state = models.CharField(max_length=16, choices=ChangeState.choices, default=ChangeState.OPEN, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    decided_by = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    applied_version = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="Why the scheduler could not apply it, last time it tried.")

    class Meta:
        ordering = ["-id"]
        permissions = [("approve_changerequest", "Can approve or reject change requests (never one's own)")]

    def __str__(self) -> str:
        return f"change request #{self.pk} ({self.kind} {self.target})"


class ChangeApproval(models.Model):
    """One principal's approval of a change request; edits of the request delete them (voided)."""

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="approvals")
    principal = models.CharField(max_length=200)
    name = models.CharField(max_length=200, help_text="The approver as the audit log names them.")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]
        constraints = [models.UniqueConstraint(fields=["change", "principal"], name="approval_once_per_principal")]

    def __str__(self) -> str:
        return f"{self.name} approved #{self.change_id}"


class SchedulerBeat(models.Model):
    """The last sign of life of each `manage.py run_scheduler` process (shown in the admin)."""

    name = models.CharField(max_length=200, unique=True, help_text="host:pid")
    beat_at = models.DateTimeField()
    started_at = models.DateTimeField()
    applied = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self) -> str:
        return self.name
