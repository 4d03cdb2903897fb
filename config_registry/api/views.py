"""API views: parse input, check scope and limits, call one service or selector, answer."""

import json

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import changes, selectors, services
from ..diff import diff_as_dict
from ..exceptions import InvalidInput, NotFound
from ..models import AuditEvent, ChangeRequest, Layer, Scope
from ..selectors import layer_get
from ..usage import USAGE, key_usage
from ..validation import key_problem
from . import serializers as s
from .authentication import ServiceTokenAuthentication, request_actor
from .permissions import HasTokenScope, IsEndUser, may_reach_layer, require_context, require_layer

ERRORS = {
    code: OpenApiResponse(s.ErrorSerializer, description=text)
    for code, text in {
        400: "bad input: the message and `errors` say what to fix",
        401: "no token, or an unknown, expired or revoked one",
        403: "the token lacks the scope, or is limited to other environments/services",
        404: "no such layer, version or user",
        429: "too many requests for this token: see Retry-After",
    }.items()
}


def _errors(*codes: int) -> dict:
    return {code: ERRORS[code] for code in codes}


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _reveals(request) -> bool:
    return Scope.SECRETS_READ in request.auth.scopes


def _entries(request, layer: Layer, number: int) -> tuple[dict, list[str]]:
    """A version's entries as this token may see them: secrets opened (audited) with secrets:read."""
    if _reveals(request):
        return services.version_reveal(layer=layer, number=number, actor=request_actor(request))
    return selectors.version_entries(layer, number)


# Service-token endpoints: the scope per method comes from `required_scopes`. (A comment, not a docstring:
# drf-spectacular would show a docstring on every operation of every subclass.)
class TokenView(APIView):
    authentication_classes = [ServiceTokenAuthentication]
    permission_classes = [HasTokenScope]
    required_scopes: dict[str, str] = {}

    def layer(self, ref: str) -> Layer:
        require_layer(self.request.auth, ref)
        return layer_get(ref)


class ResolveView(TokenView):
    required_scopes = {"GET": Scope.CONFIG_READ}

    @extend_schema(
        operation_id="resolve",
        parameters=[s.ResolveQuerySerializer],
        summary="Resolved configuration for (environment, service, user)",
        description='Secrets are "********" unless the token has secrets:read (each reveal is audited). '
        "Answers carry a strong ETag; send it as If-None-Match to get 304 until the next change. "
        "With revision= (or at=, the last revision at or before that time) the answer is what the context "
        "resolved to then, exactly; it never changes and may be cached for good.",
        responses={
            200: s.ResolveAnswerSerializer,
            304: OpenApiResponse(description="not modified"),
            **_errors(400, 401, 403, 404, 429),
        },
    )
    def get(self, request):
        query = s.ResolveQuerySerializer.validated(request.query_params)
        require_context(request.auth, environment=query["environment"], service=query["service"])
        context = {"environment": query["environment"], "service": query["service"], "user": query.get("user")}
        revision = selectors.revision_at(query["at"]) if "at" in query else query.get("revision")
        if _reveals(request):  # a write: audited, never kept
            resolved = services.config_reveal(**context, actor=request_actor(request), revision=revision)
            etag = selectors.resolve_etag(
                epoch=request.user.position.epoch,
                revision=resolved.revision,
                context=resolved.context,
                explain=query["explain"],
                revealed=True,
            )
            body = selectors.answer_body(resolved, explain=query["explain"])
        else:
            etag, body = selectors.resolve_answer(
                **context, explain=query["explain"], position=request.user.position, revision=revision
            )
        USAGE.served(request.auth.pk, query["environment"], query["service"], query.get("user"))
        headers = {"ETag": etag}
        if revision is not None:  # what a revision resolved to never changes
            headers["Cache-Control"] = "private, max-age=31536000, immutable"
        warnings = selectors.context_warnings(query["environment"], query["service"], request.user.position)
        if warnings:  # rare (a typo): the kept body is rebuilt with them
            headers["Warning"] = ", ".join(f'299 config-registry "{warning}"' for warning in warnings)
            body = json.dumps({**json.loads(body), "warnings": warnings}).encode()
        if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
            return HttpResponse(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return HttpResponse(body, content_type="application/json", headers=headers)


class MeConfigView(APIView):
    authentication_classes = [ServiceTokenAuthentication, SessionAuthentication]
    permission_classes = [IsEndUser]

    @extend_schema(
        operation_id="me_config",
        parameters=[s.ContextQuerySerializer],
        summary="The signed-in user's own configuration (non-secret keys only)",
        responses={200: s.MeConfigAnswerSerializer, **_errors(400, 401, 403, 429)},
    )
    def get(self, request):
        query = _valid(s.ContextQuerySerializer, request.query_params)
        resolved = selectors.config_resolve(
            environment=query["environment"], service=query["service"], user=request.user.username
        )
        values = {key: value for key, value in resolved.values.items() if key not in resolved.secrets}
        return Response({"revision": resolved.revision, "context": resolved.context, "values": values})


class LayerListView(TokenView):
    required_scopes = {"GET": Scope.CONFIG_READ, "POST": Scope.CONFIG_WRITE}

    @extend_schema(
        operation_id="layers_list",
        summary="Every layer the token may see",
        responses={200: s.LayerSummarySerializer(many=True), **_errors(401, 403, 429)},
    )
    def get(self, request):
        token = request.auth
        layers = [layer for layer in Layer.objects.all() if may_reach_layer(token, layer.ref)]
        return Response(s.LayerSummarySerializer(layers, many=True).data)

    @extend_schema(
        operation_id="layers_create",
        summary="Create an empty layer (version 0)",
        request=s.LayerCreateSerializer,
        responses={201: s.LayerSerializer, **_errors(400, 401, 403, 429)},
    )
    def post(self, request):
        data = _valid(s.LayerCreateSerializer, request.data)
        require_layer(request.auth, data["ref"])
        layer = services.layer_create(
            ref=data["ref"],
            description=data["description"],
            priority=data["priority"],
            required_approvals=data["required_approvals"],
            actor=request_actor(request),
        )
        return Response(_layer_detail(layer, {}, []), status=status.HTTP_201_CREATED)


def _layer_detail(layer: Layer, entries: dict, secrets: list) -> dict:
    return {**s.LayerSummarySerializer(layer).data, "entries": entries, "secrets": secrets}


def _version_summary(version) -> dict:
    return {
        "version": version.number,
        "author": version.author,
        "created_at": version.created_at,
        "comment": version.comment,
        "rolled_back_from": version.rolled_back_from,
        "change_request": version.change_request,
        "approved_by": version.approved_by,
    }


PROPOSED = OpenApiResponse(
    s.ChangeRequestSerializer,
    description="the layer requires approvals (or publish_at was given): the change request made, "
    "applied once others approve it (GET/PATCH /api/v1/changes/{id})",
)


def _proposed(submitted: changes.Submitted) -> Response:
    return Response(selectors.change_shown(submitted.change), status=status.HTTP_202_ACCEPTED)


class LayerDetailView(TokenView):
    required_scopes = {"GET": Scope.CONFIG_READ, "PATCH": Scope.CONFIG_WRITE}

    @extend_schema(
        operation_id="layers_update",
        request=s.LayerSettingsSerializer,
        summary="Change a layer's description, priority (group layers) or required approvals",
        description="On a gated layer a change of priority or required_approvals is a change request (202).",
        responses={200: s.LayerSerializer, 202: PROPOSED, **_errors(400, 401, 403, 404, 429)},
    )
    def patch(self, request, ref):
        layer = self.layer(ref)
        data = _valid(s.LayerSettingsSerializer, request.data)
        submitted = changes.settings_submit(
            layer=layer,
            description=data.get("description", layer.description),
            priority=data.get("priority", layer.priority),
            required_approvals=data.get("required_approvals", layer.required_approvals),
            comment=data["comment"],
            actor=request_actor(request),
        )
        if submitted.change is not None:
            return _proposed(submitted)
        layer = layer_get(ref)
        entries, secrets = _entries(request, layer, layer.current_version)
        return Response(_layer_detail(layer, entries, secrets))

    @extend_schema(
        operation_id="layers_retrieve",
        summary="A layer with its current entries",
        responses={200: s.LayerSerializer, **_errors(400, 401, 403, 404, 429)},
    )
    def get(self, request, ref):
        layer = self.layer(ref)
        entries, secrets = _entries(request, layer, layer.current_version)
        return Response(_layer_detail(layer, entries, secrets))


class VersionListView(TokenView):
    required_scopes = {"GET": Scope.CONFIG_READ, "POST": Scope.CONFIG_WRITE}

    @extend_schema(
        operation_id="versions_list",
        summary="Every version of a layer, oldest first",
        responses={200: s.VersionSummarySerializer(many=True), **_errors(400, 401, 403, 404, 429)},
    )
    def get(self, request, ref):
        layer = self.layer(ref)
        return Response(
            s.VersionSummarySerializer([_version_summary(v) for v in layer.versions.order_by("number")], many=True).data
        )

    @extend_schema(
        operation_id="versions_publish",
        request=s.PublishSerializer,
        summary="Publish the next version: the base's entries, plus set, minus unset",
        description="On a layer with required_approvals, or with publish_at, the answer is 202 with the "
        "change request made instead (checked as the publish would be: 400/409 alike).",
        responses={
            201: s.PublishedSerializer,
            202: PROPOSED,
            409: OpenApiResponse(
                s.ErrorSerializer, description="the layer moved past base_version; current_version says where it is"
            ),
            **_errors(400, 401, 403, 404, 429),
        },
    )
    def post(self, request, ref):
        layer = self.layer(ref)
        data = _valid(s.PublishSerializer, request.data)
        submitted = changes.version_submit(
            layer=layer,
            base_version=data["base_version"],
            set_=data["set"],
            unset=data["unset"],
            secrets=data["secrets"],
            comment=data["comment"],
            publish_at=data["publish_at"],
            actor=request_actor(request),
        )
        if submitted.change is not None:
            return _proposed(submitted)
        return Response(_published(submitted.version), status=status.HTTP_201_CREATED)


def _published(version) -> dict:
    """A publish's answer: the new version and what changed, keys only (SPEC §4): it costs what the
    change costs, and shows no value to a token that may write but not read."""
    return {
        **_version_summary(version),
        "changes": [{"key": c.key, "change": c.kind, "secret": c.secret} for c in version.changes],
    }


class VersionDetailView(TokenView):
    required_scopes = {"GET": Scope.CONFIG_READ}

    @extend_schema(
        operation_id="versions_retrieve",
        summary="One version with its complete entry set",
        responses={200: s.VersionSerializer, **_errors(400, 401, 403, 404, 429)},
    )
    def get(self, request, ref, number):
        layer = self.layer(ref)
        version = selectors.version_get(layer, number)
        entries, secrets = _entries(request, layer, number)
        return Response({**_version_summary(version), "entries": entries, "secrets": secrets})


class RollbackView(TokenView):
    required_scopes = {"POST": Scope.CONFIG_WRITE}

    @extend_schema(
        operation_id="layers_rollback",
        request=s.RollbackSerializer,
        summary="Publish a new version equal to an earlier one",
        description="On a layer with required_approvals, or with publish_at: 202 with the change request.",
        responses={
            201: s.PublishedSerializer,
            202: PROPOSED,
            409: OpenApiResponse(s.ErrorSerializer, description="the layer moved past base_version"),
            **_errors(400, 401, 403, 404, 429),
        },
    )
    def post(self, request, ref):
        layer = self.layer(ref)
        data = _valid(s.RollbackSerializer, request.data)
        submitted = changes.rollback_submit(
            layer=layer,
            to_version=data["to_version"],
            base_version=data["base_version"],
            comment=data["comment"],
            publish_at=data["publish_at"],
            actor=request_actor(request),
        )
        if submitted.change is not None:
            return _proposed(submitted)
        return Response(_published(submitted.version), status=status.HTTP_201_CREATED)


class DiffView(TokenView):
    required_scopes = {"GET": Scope.CONFIG_READ}

    @extend_schema(
        operation_id="layers_diff",
        parameters=[s.DiffQuerySerializer],
        summary="Added, removed and changed keys between two versions (secrets: only that they changed)",
        responses={200: s.DiffAnswerSerializer, **_errors(400, 401, 403, 404, 429)},
    )
    def get(self, request, ref):
        layer = self.layer(ref)
        query = _valid(s.DiffQuerySerializer, request.query_params)
        changes = selectors.version_diff(layer=layer, from_number=query["from"], to_number=query["to"])
        return Response({"layer": layer.ref, "from": query["from"], "to": query["to"], **diff_as_dict(changes)})


class AuditPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class AuditListView(TokenView, generics.ListAPIView):
    required_scopes = {"GET": Scope.AUDIT_READ}
    serializer_class = s.AuditEventSerializer
    pagination_class = AuditPagination

    def get_queryset(self):
        query = _valid(s.AuditQuerySerializer, self.request.query_params)
        events = AuditEvent.objects.order_by("-seq")
        for field in ("actor", "action", "target"):
            if field in query:
                events = events.filter(**{field: query[field]})
        if "change_request" in query:
            events = events & selectors.change_audit(query["change_request"])
        if "since" in query:
            events = events.filter(at__gte=query["since"])
        if "until" in query:
            events = events.filter(at__lt=query["until"])
        return events

    @extend_schema(
        operation_id="audit_list",
        parameters=[s.AuditQuerySerializer],
        summary="The audit log, newest first, filtered and paginated",
        responses={200: s.AuditEventSerializer(many=True), **_errors(400, 401, 403, 404, 429)},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class KeyView(TokenView):
    required_scopes = {"GET": Scope.CONFIG_READ}

    @extend_schema(
        operation_id="key_find",
        parameters=[s.KeyQuerySerializer],
        summary="Where a key is set: every layer with its value (secrets masked), its definition, where it wins",
        description="Only the layers the token may reach. `wins_in` lists the environment/service views "
        "(without a user) whose value this layer gives; `overridden_by` the higher layers that set the key too.",
        responses={200: s.KeyFoundSerializer, **_errors(400, 401, 403, 404, 429)},
    )
    def get(self, request, key: str):
        query = _valid(s.KeyQuerySerializer, request.query_params)
        problem = key_problem(key)
        if problem:
            raise InvalidInput("invalid key", {"key": problem})
        found = selectors.key_find(
            key, history=query["history"], reachable=lambda ref: may_reach_layer(request.auth, ref)
        )
        if not found.settings and found.definition is None:
            raise NotFound(f"no layer the token reaches sets {key!r}, and it has no key definition")
        answer = found.as_dict()
        limited = request.auth.environments or request.auth.services  # usage spans every context: not for them
        use = None if limited else key_usage().get(key)
        answer["usage"] = use and {"last_read_at": use.last_read_at, "served": use.served, "tokens": sorted(use.tokens)}
        return Response(answer)


class CompareView(TokenView):
    required_scopes = {"GET": Scope.CONFIG_READ}

    @extend_schema(
        operation_id="compare",
        parameters=[s.CompareQuerySerializer],
        summary="What differs between two contexts, or two layers: added, removed, changed, with provenance",
        description="Secrets are never opened: two secret values differ unless they come from the same layer "
        "version, and are shown only as changed.",
        responses={200: s.CompareAnswerSerializer, **_errors(400, 401, 403, 404, 429)},
    )
    def get(self, request):
        query = _valid(s.CompareQuerySerializer, request.query_params)
        if "left" in query:
            for side in (query["left"], query["right"]):
                require_context(request.auth, environment=side["environment"], service=side["service"])
            left, right = selectors.context_side(**query["left"]), selectors.context_side(**query["right"])
        else:
            left, right = (selectors.layer_side(self.layer(query[side])) for side in ("left_layer", "right_layer"))
        return Response(selectors.sides_compare(left, right))


# Change requests (SPEC §11) -------------------------------------------------------------------

CHANGE_CONFLICT = OpenApiResponse(
    s.ErrorSerializer, description="not possible in its state: stale (rebase by editing), not open, not due"
)


class ChangeView(TokenView):
    def change(self, change_id: int) -> ChangeRequest:
        change = ChangeRequest.objects.select_related("layer").filter(pk=change_id).first()
        if change is None:
            raise NotFound(f"there is no change request #{change_id}")
        if change.layer is not None:
            require_layer(self.request.auth, change.target)
        elif self.request.auth.environments or self.request.auth.services:
            raise exceptions.PermissionDenied(
                f"change request #{change_id} changes a key definition, which reaches every environment and "
                "service: a token limited to some cannot see it"
            )
        return change

    def shown(self, change: ChangeRequest, code: int = 200) -> Response:
        change = ChangeRequest.objects.select_related("layer").prefetch_related("approvals").get(pk=change.pk)
        return Response(selectors.change_shown(change), status=code)


class ChangeListView(ChangeView):
    required_scopes = {"GET": Scope.CONFIG_READ}

    @extend_schema(
        operation_id="changes_list",
        parameters=[s.ChangesQuerySerializer],
        summary="Change requests, newest first (those of the layers the token reaches)",
        responses={200: s.ChangeRequestSerializer(many=True), **_errors(400, 401, 403, 429)},
    )
    def get(self, request):
        query = _valid(s.ChangesQuerySerializer, request.query_params)
        token = request.auth
        limited = token.environments or token.services
        shown = [
            selectors.change_shown(change)
            for change in selectors.changes_list(state=query.get("state"), target=query.get("layer"))[:500]
            if (may_reach_layer(token, change.target) if change.layer_id else not limited)
        ]
        return Response(shown)


class ChangeDetailView(ChangeView):
    required_scopes = {"GET": Scope.CONFIG_READ, "PATCH": Scope.CONFIG_WRITE}

    @extend_schema(
        operation_id="changes_retrieve",
        summary="A change request: its proposal (secrets masked), approvals, impact, state",
        responses={200: s.ChangeRequestSerializer, **_errors(401, 403, 404, 429)},
    )
    def get(self, request, change_id):
        return self.shown(self.change(change_id))

    @extend_schema(
        operation_id="changes_edit",
        request=s.ChangeEditSerializer,
        summary="Edit a change request (its author only): checked again, its approvals voided",
        description="A rebase is an edit of base_version. A new `set` replaces the old one (with its `secrets`).",
        responses={200: s.ChangeRequestSerializer, 409: CHANGE_CONFLICT, **_errors(400, 401, 403, 404, 429)},
    )
    def patch(self, request, change_id):
        change = self.change(change_id)
        fields = _valid(s.ChangeEditSerializer, request.data)
        return self.shown(changes.change_edit(change=change, actor=request_actor(request), **fields))


class ChangeApproveView(ChangeView):
    required_scopes = {"POST": Scope.CHANGES_APPROVE}

    @extend_schema(
        operation_id="changes_approve",
        request=None,
        summary="Approve (never one's own request); applied at once when it has its approvals and is due",
        responses={200: s.ChangeRequestSerializer, 409: CHANGE_CONFLICT, **_errors(401, 403, 404, 429)},
    )
    def post(self, request, change_id):
        change = self.change(change_id)
        return self.shown(changes.change_approve(change=change, actor=request_actor(request)))


class ChangeRejectView(ChangeView):
    required_scopes = {"POST": Scope.CHANGES_APPROVE}

    @extend_schema(
        operation_id="changes_reject",
        request=s.ChangeRejectSerializer,
        summary="Reject: the request is closed unapplied",
        responses={200: s.ChangeRequestSerializer, 409: CHANGE_CONFLICT, **_errors(400, 401, 403, 404, 429)},
    )
    def post(self, request, change_id):
        change = self.change(change_id)
        data = _valid(s.ChangeRejectSerializer, request.data)
        return self.shown(changes.change_reject(change=change, actor=request_actor(request), reason=data["reason"]))


class ChangeApplyView(ChangeView):
    required_scopes = {"POST": Scope.CONFIG_WRITE}

    @extend_schema(
        operation_id="changes_apply",
        request=None,
        summary="Apply an approved, due request now (one publish by its author, approvers recorded)",
        responses={200: s.ChangeRequestSerializer, 409: CHANGE_CONFLICT, **_errors(401, 403, 404, 429)},
    )
    def post(self, request, change_id):
        change = self.change(change_id)
        return self.shown(changes.change_apply(change=change, actor=request_actor(request)))
