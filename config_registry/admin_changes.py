"""Admin screens of change requests (SPEC §11): the open list with diff and impact, a request's page
with approve / reject / apply / rebase / schedule. A client of config_registry.changes, nothing more."""

import re

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.timezone import localtime

from . import changes, selectors
from .admin_common import APPROVE_PERMISSION, admin_actor, publish_at_field
from .exceptions import ChangeConflict, InvalidInput, NotFound, PermissionRefused, VersionConflict
from .models import ChangeKind, ChangeRequest, ChangeState

CHANGE_SEARCH = re.compile(r"^(?:change:|#)(\d+)$")  # how the audit log is searched by change request


class StateFilter(admin.SimpleListFilter):
    """Open requests first: the list a reviewer comes for."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("applied", "Applied"), ("rejected", "Rejected"), ("all", "All")]

    def choices(self, changelist):
        for value, label in self.lookup_choices:
            yield {
                "selected": (self.value() or "open") == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        value = self.value() or "open"
        return queryset if value == "all" else queryset.filter(state=value)


def _summary(change: ChangeRequest) -> str:
    signs = {"added": "+", "removed": "−", "changed": "~"}
    shown = [f"{signs.get(row['kind'], '~')}{row['key']}" for row in change.changes[:6]]
    return " ".join(shown) + (f" … ({len(change.changes)})" if len(change.changes) > 6 else "")


@admin.register(ChangeRequest)
class ChangeRequestAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "target",
        "kind",
        "state_shown",
        "approvals_shown",
        "summary",
        "reach",
        "author",
        "publish_at",
    ]
    list_display_links = ["number"]
    list_filter = [StateFilter, "kind"]
    search_fields = ["target", "author", "comment"]
    change_list_template = "admin/config_registry/changerequest/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("layer").prefetch_related("approvals")

    def has_add_permission(self, request):
        return False  # requests are made by the writes they stand for (the layer editor, the API, …)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        user = request.user
        return any(
            user.has_perm(p) for p in ("config_registry.view_layer", "config_registry.change_layer", APPROVE_PERMISSION)
        )

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("config_registry.change_layer") or request.user.has_perm(APPROVE_PERMISSION)

    @admin.display(description="#", ordering="id")
    def number(self, change):
        return f"#{change.pk}"

    @admin.display(description="state", ordering="state")
    def state_shown(self, change):
        return "stale" if change.state == ChangeState.OPEN and changes.change_stale(change) else change.state

    @admin.display(description="approvals")
    def approvals_shown(self, change):
        return f"{len(change.approvals.all())} / {changes.change_required_approvals(change)}"

    @admin.display(description="changes")
    def summary(self, change):
        return _summary(change)

    @admin.display(description="reaches")
    def reach(self, change):
        users, _ = selectors.change_reach(change)
        return f"{users} user{'s' if users != 1 else ''}"

    def changelist_view(self, request, extra_context=None):
        beat = selectors.scheduler_beat()
        waiting = ChangeRequest.objects.filter(state=ChangeState.OPEN, publish_at__isnull=False).exists()
        extra = {
            "scheduler": beat,
            "scheduler_silent": selectors.scheduler_silent(beat),
            "scheduled_waiting": waiting,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        change = get_object_or_404(ChangeRequest.objects.select_related("layer"), pk=object_id)
        if not self.has_view_permission(request, change):
            raise PermissionDenied
        if request.method == "POST":
            return self._act(request, change)
        return self._page(request, change)

    def _page(self, request, change):
        shown = selectors.change_shown(change)
        actor = admin_actor(request)
        is_author = changes.principal_of(actor) == change.author_principal
        may_write = request.user.has_perm("config_registry.change_layer")
        may_approve = request.user.has_perm(APPROVE_PERMISSION)
        reach, reach_who = selectors.change_reach(change)
        due = change.publish_at is None or change.publish_at <= localtime()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Change request #{change.pk}",
            "change": shown,
            "layer_pk": change.layer_id,
            "reach": reach,
            "reach_who": reach_who,
            "is_author": is_author,
            "can_approve": may_approve and not is_author and not shown["stale"],
            "can_reject": may_approve or is_author,
            "can_apply": may_write
            and not shown["stale"]
            and due
            and len(shown["approvals"]) >= shown["required_approvals"],
            "current_version": change.layer.current_version
            if change.kind in (ChangeKind.PUBLISH, ChangeKind.ROLLBACK)
            else None,
            "publish_at_local": localtime(change.publish_at).strftime("%Y-%m-%dT%H:%M") if change.publish_at else "",
        }
        return TemplateResponse(request, "admin/config_registry/change_request.html", context)

    def _act(self, request, change):
        actor, post = admin_actor(request), request.POST
        try:
            if "_approve" in post:
                if not request.user.has_perm(APPROVE_PERMISSION):
                    raise PermissionDenied
                change = changes.change_approve(change=change, actor=actor)
                done = "Applied" if change.state == ChangeState.APPLIED else "Approved"
                message = f"{done} change request #{change.pk}" + (
                    f": {change.target} is at version {change.applied_version}." if change.applied_version else "."
                )
            elif "_reject" in post:
                is_author = changes.principal_of(actor) == change.author_principal
                if not (request.user.has_perm(APPROVE_PERMISSION) or is_author):
                    raise PermissionDenied
                changes.change_reject(change=change, actor=actor, reason=post.get("reason", ""))
                message = f"{'Withdrew' if is_author else 'Rejected'} change request #{change.pk}."
            elif "_apply" in post:
                if not request.user.has_perm("config_registry.change_layer"):
                    raise PermissionDenied
                change = changes.change_apply(change=change, actor=actor)
                message = f"Applied change request #{change.pk}."
            elif "_rebase" in post:
                changes.change_edit(change=change, actor=actor, base_version=int(post.get("base_version", "")))
                message = f"Rebased change request #{change.pk}: its approvals are asked for again."
            elif "_schedule" in post:
                changes.change_edit(change=change, actor=actor, publish_at=publish_at_field(post))
                message = f"Rescheduled change request #{change.pk}: its approvals are asked for again."
            else:
                raise InvalidInput("no action: approve, reject, apply, rebase or schedule")
        except (ChangeConflict, InvalidInput, PermissionRefused, NotFound, VersionConflict, ValueError) as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:config_registry_changerequest_change", args=[change.pk]))


def audit_search(queryset, term: str):
    """The audit admin's search for `change:12` (or `#12`): that request's every event, its publish included."""
    found = CHANGE_SEARCH.match(term.strip())
    return (queryset & selectors.change_audit(int(found.group(1)))) if found else None
