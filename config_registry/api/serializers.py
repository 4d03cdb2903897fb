"""Request validation and the documented shapes of answers (drf-spectacular reads them)."""

from rest_framework import serializers

from ..models import Level
from ..validation import NAME_PATTERNS

NAME_HELP = "lowercase letters, digits, - and _"


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="machine-readable code, e.g. invalid_input, version_conflict")
    message = serializers.CharField(help_text="what went wrong and what to do about it")
    errors = serializers.DictField(child=serializers.CharField(), required=False, help_text="field or key → problem")
    current_version = serializers.IntegerField(required=False, help_text="with version_conflict")


# Requests -----------------------------------------------------------------------------------

NAME_PATTERN = NAME_PATTERNS[Level.ENVIRONMENT].pattern


class ContextQuerySerializer(serializers.Serializer):
    environment = serializers.RegexField(NAME_PATTERN, max_length=63, help_text=NAME_HELP)
    service = serializers.RegexField(NAME_PATTERN, max_length=63, help_text=NAME_HELP)


_NAME, _USERNAME = NAME_PATTERNS[Level.SERVICE], NAME_PATTERNS[Level.USER]


class ResolveQuerySerializer(ContextQuerySerializer):
    user = serializers.RegexField(
        NAME_PATTERNS[Level.USER].pattern,
        required=False,
        max_length=150,
        help_text="username; omit to resolve down to the service level",
    )
    explain = serializers.BooleanField(default=False, help_text="add provenance per key")
    revision = serializers.IntegerField(
        required=False, min_value=1, help_text="resolve as at this past revision (an answer that never changes)"
    )
    at = serializers.DateTimeField(
        required=False, help_text="ISO 8601 time: resolve as at the last revision made at or before it"
    )

    def validate(self, data):
        if "revision" in data and "at" in data:
            raise serializers.ValidationError({"at": "give revision or at, not both"})
        return data

    @classmethod
    def validated(cls, params) -> dict:
        """The query, validated. A well-formed one is checked without building the serializer (the
        API's hot path: building it costs as much as the rest of a warm resolve); anything else goes
        through the serializer, which says what is wrong."""
        environment, service, user = params.get("environment", ""), params.get("service", ""), params.get("user")
        explain = params.get("explain", "false")
        if (
            _NAME.match(environment)
            and _NAME.match(service)
            and (user is None or _USERNAME.match(user))
            and explain in ("true", "false")
            and "revision" not in params
            and "at" not in params
        ):
            return {"environment": environment, "service": service, "user": user, "explain": explain == "true"}
        serializer = cls(data=params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class LayerSettingsSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    priority = serializers.IntegerField(required=False, min_value=-1_000_000, max_value=1_000_000)
    required_approvals = serializers.IntegerField(
        required=False, min_value=0, max_value=10, help_text="approvals every change needs (0: none)"
    )
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class LayerCreateSerializer(serializers.Serializer):
    ref = serializers.CharField(
        max_length=200, help_text="global, environment:<name>, service:<name>, group:<name> or user:<username>"
    )
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    priority = serializers.IntegerField(
        required=False,
        default=0,
        min_value=-1_000_000,
        max_value=1_000_000,
        help_text="group layers: the highest priority wins",
    )
    required_approvals = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=10, help_text="approvals every change needs (0: none)"
    )


class PublishSerializer(serializers.Serializer):
    base_version = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, help_text="the version this change was made from (0: none yet)"
    )
    set = serializers.DictField(
        child=serializers.JSONField(allow_null=True),
        required=False,
        default=dict,
        help_text="key → JSON value to add or replace",
    )
    unset = serializers.ListField(child=serializers.CharField(max_length=200), required=False, default=list)
    secrets = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        default=list,
        help_text="keys of `set` to store encrypted",
    )
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    publish_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="apply at this time (run_scheduler): the answer is then 202 with a change request",
    )


class RollbackSerializer(serializers.Serializer):
    to_version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    base_version = serializers.IntegerField(min_value=0, max_value=2**31 - 1)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    publish_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="apply at this time (run_scheduler): the answer is then 202 with a change request",
    )


class DiffQuerySerializer(serializers.Serializer):
    def get_fields(self):
        # "from" is a Python keyword, hence fields built here.
        return {
            "from": serializers.IntegerField(min_value=0, max_value=2**31 - 1, help_text="0: the empty layer"),
            "to": serializers.IntegerField(min_value=0, max_value=2**31 - 1),
        }


class AuditQuerySerializer(serializers.Serializer):
    actor = serializers.CharField(required=False, max_length=200)
    action = serializers.CharField(required=False, max_length=64)
    target = serializers.CharField(required=False, max_length=300)
    change_request = serializers.IntegerField(
        required=False, min_value=1, help_text="every event of one change request, its publish included"
    )
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


# Answers ------------------------------------------------------------------------------------


class OriginSerializer(serializers.Serializer):
    layer = serializers.CharField()
    version = serializers.IntegerField(allow_null=True)


class ProvenanceSerializer(OriginSerializer):
    overrides = OriginSerializer(many=True)


class ResolveAnswerSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    context = serializers.DictField(child=serializers.CharField())
    values = serializers.DictField(child=serializers.JSONField(allow_null=True))
    secrets = serializers.ListField(
        child=serializers.CharField(), help_text="the keys whose values are secrets (revealed or not)"
    )
    provenance = serializers.DictField(child=ProvenanceSerializer(), required=False)
    warnings = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="an environment or service no published layer has (a typo?), with the known names",
    )


class MeConfigAnswerSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    context = serializers.DictField(child=serializers.CharField())
    values = serializers.DictField(child=serializers.JSONField(allow_null=True))


class LayerSummarySerializer(serializers.Serializer):
    ref = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    priority = serializers.IntegerField()
    required_approvals = serializers.IntegerField(help_text="approvals every change needs (0: none)")
    current_version = serializers.IntegerField()
    updated_at = serializers.DateTimeField(allow_null=True)
    updated_by = serializers.CharField(allow_blank=True)


class LayerSerializer(LayerSummarySerializer):
    entries = serializers.DictField(
        child=serializers.JSONField(allow_null=True), help_text='secrets shown as "********" without secrets:read'
    )
    secrets = serializers.ListField(child=serializers.CharField())


class VersionSummarySerializer(serializers.Serializer):
    version = serializers.IntegerField()
    author = serializers.CharField()
    created_at = serializers.DateTimeField()
    comment = serializers.CharField(allow_blank=True)
    rolled_back_from = serializers.IntegerField(allow_null=True)
    change_request = serializers.IntegerField(allow_null=True, help_text="the change request it applied")
    approved_by = serializers.ListField(child=serializers.CharField())


class VersionSerializer(VersionSummarySerializer):
    entries = serializers.DictField(child=serializers.JSONField(allow_null=True))
    secrets = serializers.ListField(child=serializers.CharField())


class ChangedKeySerializer(serializers.Serializer):
    key = serializers.CharField()
    change = serializers.ChoiceField(choices=["added", "removed", "changed"])
    secret = serializers.BooleanField()


class PublishedSerializer(VersionSummarySerializer):
    changes = ChangedKeySerializer(
        many=True, help_text="what this version changed, keys only; the entries are at GET …/versions/{n}"
    )


class ChangeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["added", "removed", "changed"])
    secret = serializers.BooleanField()
    before = serializers.JSONField(required=False, allow_null=True, help_text="never for secrets")
    after = serializers.JSONField(required=False, allow_null=True, help_text="never for secrets")


class DiffAnswerSerializer(serializers.Serializer):
    def get_fields(self):
        return {
            "layer": serializers.CharField(),
            "from": serializers.IntegerField(),
            "to": serializers.IntegerField(),
            "added": serializers.DictField(child=ChangeSerializer()),
            "removed": serializers.DictField(child=ChangeSerializer()),
            "changed": serializers.DictField(child=ChangeSerializer()),
        }


class AuditEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()
    target = serializers.CharField()
    source = serializers.CharField(allow_blank=True)
    changes = serializers.JSONField()
    hash = serializers.CharField()
    prev_hash = serializers.CharField()


class KeyQuerySerializer(serializers.Serializer):
    history = serializers.BooleanField(default=False, help_text="also every past value of the key")


class KeyDefinitionShownSerializer(serializers.Serializer):
    description = serializers.CharField()
    schema = serializers.JSONField(allow_null=True)
    secret = serializers.BooleanField()
    has_default = serializers.BooleanField()
    default = serializers.JSONField(allow_null=True, help_text='"********" for a secret key')


class KeySettingSerializer(serializers.Serializer):
    layer = serializers.CharField()
    level = serializers.CharField()
    version = serializers.IntegerField(help_text="the version that set this value")
    value = serializers.JSONField(allow_null=True, help_text='"********" for a secret')
    secret = serializers.BooleanField()
    current = serializers.BooleanField(help_text="in the layer's current version (else a past value)")
    until = serializers.IntegerField(allow_null=True, help_text="the version that replaced or removed it")
    wins_in = serializers.ListField(
        child=serializers.CharField(), help_text="environment/service views whose value this is"
    )
    overridden_by = serializers.ListField(child=serializers.CharField(), help_text="higher layers setting it too")


class KeyUsageSerializer(serializers.Serializer):
    last_read_at = serializers.DateTimeField()
    served = serializers.IntegerField(help_text="answers holding the key (approximate, written each minute)")
    tokens = serializers.ListField(child=serializers.CharField())


class KeyFoundSerializer(serializers.Serializer):
    key = serializers.CharField()
    definition = KeyDefinitionShownSerializer(allow_null=True)
    layers = KeySettingSerializer(many=True)
    usage = KeyUsageSerializer(allow_null=True, help_text="null: never counted, or a token with limits")


class CompareQuerySerializer(serializers.Serializer):
    left = serializers.CharField(required=False, help_text="a context: environment/service[/user]")
    right = serializers.CharField(required=False, help_text="a context: environment/service[/user]")
    left_layer = serializers.CharField(required=False, help_text="or a layer ref, e.g. environment:production")
    right_layer = serializers.CharField(required=False, help_text="or a layer ref, e.g. environment:staging")

    def validate(self, data):
        contexts = {"left", "right"} <= data.keys() and not data.keys() & {"left_layer", "right_layer"}
        layers = {"left_layer", "right_layer"} <= data.keys() and not data.keys() & {"left", "right"}
        if contexts == layers:  # neither pair whole, or parts of both
            raise serializers.ValidationError(
                "give two contexts (left=production/chat&right=staging/chat[/user]) or two layers "
                "(left_layer=…&right_layer=…)"
            )
        for side in ("left", "right") if contexts else ():
            parts = data[side].split("/")
            if len(parts) not in (2, 3) or not all(parts):
                raise serializers.ValidationError(
                    {side: "a context is environment/service or environment/service/user"}
                )
            data[side] = {"environment": parts[0], "service": parts[1], "user": parts[2] if len(parts) == 3 else None}
        return data


class CompareAnswerSerializer(serializers.Serializer):
    left = serializers.CharField()
    right = serializers.CharField()
    added = serializers.DictField(child=serializers.JSONField(), help_text="in right only")
    removed = serializers.DictField(child=serializers.JSONField(), help_text="in left only")
    changed = serializers.DictField(child=serializers.JSONField(), help_text="secrets: only that they differ")
    unchanged = serializers.IntegerField()


# Change requests (SPEC §11) -------------------------------------------------------------------


class ChangesQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["open", "applied", "rejected"], required=False)
    layer = serializers.CharField(required=False, max_length=300, help_text="a layer's ref, or key:<key>")


class ChangeEditSerializer(serializers.Serializer):
    """Only the fields given change; any edit voids the request's approvals."""

    base_version = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1, help_text="rebase")
    set = serializers.DictField(child=serializers.JSONField(allow_null=True), required=False)
    unset = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    secrets = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    to_version = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    priority = serializers.IntegerField(required=False, min_value=-1_000_000, max_value=1_000_000)
    required_approvals = serializers.IntegerField(required=False, min_value=0, max_value=10)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    publish_at = serializers.DateTimeField(required=False, allow_null=True)


class ChangeRejectSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ApprovalSerializer(serializers.Serializer):
    by = serializers.CharField()
    at = serializers.DateTimeField()


class ChangeRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["publish", "rollback", "settings", "definition"])
    target = serializers.CharField(help_text="the layer's ref, or key:<key>")
    state = serializers.ChoiceField(choices=["open", "applied", "rejected"])
    stale = serializers.BooleanField(help_text="its target moved on: rebase it by editing base_version")
    base_version = serializers.IntegerField()
    proposal = serializers.JSONField(help_text='the proposed change; secret values as "********"')
    changes = serializers.ListField(
        child=serializers.JSONField(), help_text="what it changes (secrets only as changed)"
    )
    comment = serializers.CharField(allow_blank=True)
    author = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    publish_at = serializers.DateTimeField(allow_null=True)
    required_approvals = serializers.IntegerField()
    approvals = ApprovalSerializer(many=True)
    impact = serializers.JSONField(help_text='{"users": n}: how many users it reaches')
    applied_version = serializers.IntegerField(allow_null=True)
    decided_by = serializers.CharField(allow_blank=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
