"""Admin screens: a client of services and selectors, nothing more.

Layers are edited as a table of entries; saving publishes a new version (with a comment) through
version_publish. History, diffs, rollback (after a confirmation), preview as a user, and reveal of
one secret at a time (with the reveal permission, audited) hang off the layer's page.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Q, Value, When
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from . import changes, crypto, selectors, services
from .admin_changes import audit_search  # also registers the change requests' admin
from .admin_common import APPROVE_PERMISSION, SECURITY_PERMISSION, admin_actor, approvals_badge, publish_at_field
from .admin_editor import EntryFormSet, editor_change, editor_initial
from .diff import diff_as_dict
from .envfile import EnvPlan, env_plan
from .exceptions import (
    InvalidInput,
    NotFound,
    PermissionRefused,
    SecretUndecryptable,
    VersionConflict,
)
from .models import (
    AuditEvent,
    ChangeState,
    Entry,
    KeyDefinition,
    Layer,
    LayerVersion,
    Level,
    Scope,
    ServiceToken,
)
from .signin import ThrottledAdminAuthenticationForm
from .usage import key_usage, recently
from .validation import SECURITY_KEYS, key_problem

REVEAL_PERMISSION = "config_registry.reveal_secret"
# The admin permission a person needs to hand out each token scope (SPEC §12).
SCOPE_PERMISSIONS = {
    Scope.CONFIG_READ: "config_registry.view_layer",
    Scope.SECRETS_READ: REVEAL_PERMISSION,
    Scope.CONFIG_WRITE: "config_registry.change_layer",
    Scope.AUDIT_READ: "config_registry.view_auditevent",
    Scope.CHAT_TICKET: "config_registry.grant_chat_ticket",
    Scope.SECURITY_WRITE: SECURITY_PERMISSION,
    Scope.METRICS_READ: "config_registry.view_layer",  # counts and timings, no configuration
    Scope.CHANGES_APPROVE: APPROVE_PERMISSION,
}


def grantable_scopes(user) -> list[str]:
    """The token scopes `user` may hand out: those whose admin permission they hold."""
    return [scope for scope, permission in SCOPE_PERMISSIONS.items() if user.has_perm(permission)]


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written only through services (publish, rollback, audit_record)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LayerCreateForm(forms.ModelForm):
    ref = forms.CharField(help_text="global, environment:<name>, service:<name>, group:<name> or user:<username>")
    required_approvals = forms.IntegerField(
        min_value=0,
        max_value=10,
        initial=0,
        required=False,
        help_text="Approvals by someone other than the author that every change needs (0: none).",
    )

    def clean_required_approvals(self):
        return self.cleaned_data.get("required_approvals") or 0

    class Meta:
        model = Layer
        fields = ["description", "priority", "required_approvals"]
        help_texts = {"priority": "Group layers only (ignored for the others): the highest priority wins."}


@admin.register(Layer)
class LayerAdmin(admin.ModelAdmin):
    list_display = ["ref_link", "approvals_badge", "description", "current_version", "updated_by", "updated_at"]
    list_filter = ["level"]
    search_fields = ["name", "description", "updated_by"]

    def get_ordering(self, request):
        return ["precedence", "-priority", "name"]  # resolution order: global first, then the more specific

    def get_queryset(self, request):
        levels = [When(level=level, then=Value(rank)) for rank, level in enumerate(Level.values)]
        layers = self.model._default_manager.annotate(precedence=Case(*levels, output_field=IntegerField()))
        return layers.order_by(*self.get_ordering(request))  # as ModelAdmin's, with the annotation first

    # Creating -------------------------------------------------------------------------------

    def get_form(self, request, obj=None, **kwargs):
        return LayerCreateForm if obj is None else super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return (
            ["ref", "description", "priority", "required_approvals"]
            if obj is None
            else super().get_fields(request, obj)
        )

    def save_model(self, request, obj, form, change):
        if not change:
            created = services.layer_create(
                ref=form.cleaned_data["ref"],
                description=obj.description,
                priority=obj.priority,
                required_approvals=obj.required_approvals,
                actor=admin_actor(request),
            )
            obj.pk, obj.level, obj.name = created.pk, created.level, created.name

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except InvalidInput as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(request.path)

    def has_delete_permission(self, request, obj=None):
        return False  # versions are history; a layer with versions is never deleted

    @admin.display(description="layer", ordering="name")
    def ref_link(self, layer):
        return layer.ref

    @admin.display(description="approvals", ordering="required_approvals")
    def approvals_badge(self, layer):
        return approvals_badge(layer)

    # The editor replaces the change form ------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(self.preview_view), name="config_registry_layer_preview"),
            path("keys/", view(self.key_search_view), name="config_registry_layer_key_search"),
            path("compare/", view(self.compare_view), name="config_registry_layer_compare"),
            path("<int:object_id>/history/", view(self.versions_view), name="config_registry_layer_versions"),
            path("<int:object_id>/diff/", view(self.diff_view), name="config_registry_layer_diff"),
            path(
                "<int:object_id>/rollback/<int:number>/",
                view(self.rollback_view),
                name="config_registry_layer_rollback",
            ),
            path("<int:object_id>/reveal/", view(self.reveal_view), name="config_registry_layer_reveal"),
            path("<int:object_id>/import-env/", view(self.import_env_view), name="config_registry_layer_import_env"),
            *super().get_urls(),
        ]

    def _context(self, request, layer, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "layer": layer,
            "title": layer.ref if layer else "Preview as a user",
            "can_change": self.has_change_permission(request, layer),
            "can_reveal": request.user.has_perm(REVEAL_PERMISSION),
            "open_changes": layer.change_requests.filter(state=ChangeState.OPEN).count() if layer else 0,
            **extra,
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        layer = get_object_or_404(Layer, pk=object_id)
        if not self.has_view_or_change_permission(request, layer):
            raise PermissionDenied
        base, base_problem = layer.current_version, None
        if request.method == "POST":
            base, base_problem = _base_version(request.POST, layer)
        entries, secrets = selectors.version_entries(layer, base)
        definitions = {d.key: d for d in KeyDefinition.objects.filter(key__in=list(entries))}
        context = {"base_version": base, "comment": request.POST.get("comment", ""), "definitions": definitions}
        context["inherited"] = selectors.inherited_values(layer)  # what each key is without this layer
        if request.method != "POST":
            formset = EntryFormSet(initial=editor_initial(entries, secrets))
            return self._editor(request, layer, formset, context)
        if not self.has_change_permission(request, layer):
            raise PermissionDenied
        if "_details" in request.POST:
            return self._save_details(request, layer)
        formset = EntryFormSet(request.POST)
        if base_problem:
            context["problem"] = base_problem
        if base_problem or not formset.is_valid():
            return self._editor(request, layer, formset, context)
        change = editor_change(formset, entries)
        context["row_errors"] = change.errors
        if change.errors:
            return self._editor(request, layer, formset, context)
        if "_preview" in request.POST:
            reach, who = selectors.layer_reach(layer)
            context.update(pending=diff_as_dict(change.diff(entries, secrets)), reach=reach, reach_who=who)
            return self._editor(request, layer, formset, context)
        try:
            publish_at = publish_at_field(request.POST)
            submitted = changes.version_submit(
                layer=layer,
                base_version=base,
                set_=change.set_,
                unset=change.unset,
                secrets=change.secrets,
                comment=context["comment"],
                publish_at=publish_at,
                actor=admin_actor(request),
            )
        except VersionConflict as error:
            # Keep what the admin typed; show what the other publish changed; base the next save on it.
            layer.refresh_from_db()
            context.update(
                conflict=error,
                base_version=layer.current_version,
                theirs=diff_as_dict(
                    selectors.version_diff(layer=layer, from_number=base, to_number=layer.current_version)
                ),
            )
            return self._editor(request, layer, formset, context)
        except InvalidInput as error:
            context["row_errors"] = error.errors
            context["problem"] = error.message
            return self._editor(request, layer, formset, context)
        except PermissionRefused as error:
            context["problem"] = str(error)
            return self._editor(request, layer, formset, context)
        if submitted.change is not None:
            return submitted_response(self, request, submitted.change)
        version = submitted.version
        self.log_change(request, layer, f"Published version {version.number}: {version.comment or 'no comment'}")
        self.message_user(request, f"Published {layer.ref} version {version.number}.", messages.SUCCESS)
        return HttpResponseRedirect(request.path)

    def _save_details(self, request, layer):
        try:
            priority = int(request.POST.get("priority", layer.priority))
            required = int(request.POST.get("required_approvals", layer.required_approvals))
            submitted = changes.settings_submit(
                layer=layer,
                description=request.POST.get("description", ""),
                priority=priority,
                required_approvals=required,
                actor=admin_actor(request),
            )
        except ValueError:
            self.message_user(request, "The priority and approvals must be whole numbers.", messages.ERROR)
        except (InvalidInput, PermissionRefused) as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            if submitted.change is not None:
                return submitted_response(self, request, submitted.change)
            self.log_change(request, layer, "Changed the description, priority or required approvals")
            self.message_user(request, f"Saved the details of {layer.ref}.", messages.SUCCESS)
        return HttpResponseRedirect(request.path)

    def _editor(self, request, layer, formset, context):
        return TemplateResponse(
            request,
            "admin/config_registry/layer_editor.html",
            self._context(request, layer, formset=formset, **context),
        )

    # History, diff, rollback --------------------------------------------------------------------

    def versions_view(self, request, object_id):
        layer = self._viewable(request, object_id)
        versions = layer.versions.order_by("-number")
        return TemplateResponse(
            request, "admin/config_registry/layer_versions.html", self._context(request, layer, versions=versions)
        )

    def diff_view(self, request, object_id):
        layer = self._viewable(request, object_id)
        try:
            to = int(request.GET.get("to", layer.current_version))
            start = int(request.GET.get("from", max(to - 1, 0)))
            diff = diff_as_dict(selectors.version_diff(layer=layer, from_number=start, to_number=to))
        except (ValueError, NotFound) as error:
            self.message_user(request, f"Cannot show that diff: {error}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:config_registry_layer_versions", args=[layer.pk]))
        return TemplateResponse(
            request,
            "admin/config_registry/layer_diff.html",
            self._context(request, layer, diff=diff, start=start, to=to, numbers=range(0, layer.current_version + 1)),
        )

    def rollback_view(self, request, object_id, number):
        layer = self._viewable(request, object_id)
        if not self.has_change_permission(request, layer):
            raise PermissionDenied
        if not 1 <= number <= layer.current_version:
            raise Http404(f"layer {layer.ref} has no version {number}")
        if request.method == "POST":
            base, problem = _base_version(request.POST, layer, required=True)
            try:
                if problem:
                    raise InvalidInput(problem)
                submitted = changes.rollback_submit(
                    layer=layer,
                    to_version=number,
                    base_version=base,
                    actor=admin_actor(request),
                    comment=request.POST.get("comment", ""),
                )
            except (VersionConflict, InvalidInput, NotFound, PermissionRefused) as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                if submitted.change is not None:
                    return submitted_response(self, request, submitted.change)
                version = submitted.version
                self.log_change(request, layer, f"Rolled back to version {number} as version {version.number}")
                self.message_user(
                    request,
                    f"Rolled {layer.ref} back to version {number}: published version {version.number}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:config_registry_layer_versions", args=[layer.pk]))
        layer.refresh_from_db()
        diff = diff_as_dict(selectors.version_diff(layer=layer, from_number=layer.current_version, to_number=number))
        return TemplateResponse(
            request,
            "admin/config_registry/layer_rollback.html",
            self._context(request, layer, number=number, diff=diff),
        )

    # Reveal one secret ---------------------------------------------------------------------------

    def reveal_view(self, request, object_id):
        layer = self._viewable(request, object_id)
        if request.method != "POST" or not request.user.has_perm(REVEAL_PERMISSION):
            raise PermissionDenied
        key = request.POST.get("key", "")
        try:
            value = services.secret_reveal(layer=layer, key=key, actor=admin_actor(request))
        except (NotFound, SecretUndecryptable) as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:config_registry_layer_change", args=[layer.pk]))
        response = TemplateResponse(
            request, "admin/config_registry/layer_reveal.html", self._context(request, layer, key=key, value=value)
        )
        response["Cache-Control"] = "no-store"
        return response

    # Import a .env file -------------------------------------------------------------------------

    def import_env_view(self, request, object_id):
        """Upload, preview (secrets only as changed), import: the same plan and publish as import_env.
        Between preview and import the plan travels sealed for this layer and base version, never in clear."""
        layer = self._viewable(request, object_id)
        if not self.has_change_permission(request, layer):
            raise PermissionDenied
        form = EnvUploadForm(request.POST or None, request.FILES or None)
        context = {"form": form}
        if request.method == "POST" and "sealed" in request.POST:
            base, problem = _base_version(request.POST, layer, required=True)
            place = crypto.Place(layer.ref, IMPORT_PLACE)
            try:
                if problem:
                    raise InvalidInput(problem)
                plan = crypto.decrypt(request.POST["sealed"], place=place, version=base)
                submitted = changes.env_import_submit(
                    ref=layer.ref,
                    entries=plan["entries"],
                    secrets=plan["secrets"],
                    base_version=base,
                    actor=admin_actor(request),
                    comment=request.POST.get("comment", "") or "imported from a .env file",
                )
            except (VersionConflict, InvalidInput, SecretUndecryptable, PermissionRefused) as error:
                self.message_user(request, f"Nothing imported: {error}", messages.ERROR)
                form = EnvUploadForm()
            else:
                if submitted.change is not None:
                    return submitted_response(self, request, submitted.change)
                version = submitted.version
                self.log_change(request, layer, f"Imported a .env file as version {version.number}")
                self.message_user(request, f"Imported into {layer.ref}: version {version.number}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:config_registry_layer_versions", args=[layer.pk]))
        elif request.method == "POST" and form.is_valid():
            plan = form.plan(selectors.known_keys())
            if not plan.entries:
                form.add_error("file", "this file holds no variable to import")
            else:
                planned = selectors.env_import_diff(layer, plan.entries, plan.secrets)
                payload = {"entries": plan.entries, "secrets": sorted(plan.secrets)}
                sealed = crypto.encrypt(
                    payload, place=crypto.Place(layer.ref, IMPORT_PLACE), version=layer.current_version
                )
                context.update(diff=diff_as_dict(planned), notes=plan.notes, names=plan.names, sealed=sealed)
        return TemplateResponse(
            request, "admin/config_registry/layer_import_env.html", self._context(request, layer, **context)
        )

    # Key search ---------------------------------------------------------------------------------

    def key_search_view(self, request):
        """Where is `database.password` set? Every layer, secrets masked, where each value wins."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        key = request.GET.get("key", "").strip()
        found, problem = None, None
        if key:
            problem = key_problem(key)
            if problem is None:
                found = selectors.key_find(key, history=request.GET.get("history") == "on")
                if not found.settings and found.definition is None:
                    problem = f"no layer sets {key!r}, and it has no key definition"
        context = {"key": key, "found": found, "problem": problem, "history": request.GET.get("history") == "on"}
        context["usage"] = key_usage().get(key) if found else None
        context["title"] = f"Key search: {key}" if key else "Key search"
        if found:
            pks = layer_pks_by_ref()
            context["rows"] = [(setting, pks.get(setting.layer)) for setting in found.settings]
        return TemplateResponse(
            request, "admin/config_registry/key_search.html", self._context(request, None, **context)
        )

    # Compare ------------------------------------------------------------------------------------

    def compare_view(self, request):
        """Two contexts (environment/service[/user]) or two layers, side by side."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        left, right = request.GET.get("left", "").strip(), request.GET.get("right", "").strip()
        compared, problem = None, None
        if left and right:
            try:
                compared = selectors.sides_compare(_side(left), _side(right))
            except (InvalidInput, NotFound) as error:
                problem = str(error)
        context = {"left": left, "right": right, "compared": compared, "problem": problem, "title": "Compare"}
        page = "admin/config_registry/compare.html"
        return TemplateResponse(request, page, self._context(request, None, **context))

    # Preview as a user ---------------------------------------------------------------------------

    def preview_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        form = PreviewForm(request.GET or None)
        resolved, problem = None, None
        if form.is_valid():
            query = {k: v or None for k, v in form.cleaned_data.items()}
            at = query.pop("at")
            try:
                if at is not None:
                    query["revision"] = selectors.revision_at(at)
                resolved = selectors.config_resolve(**query)
            except (InvalidInput, NotFound) as error:
                problem = str(error)
        return TemplateResponse(
            request,
            "admin/config_registry/preview.html",
            self._context(request, None, form=form, resolved=resolved, problem=problem),
        )

    def _viewable(self, request, object_id) -> Layer:
        layer = get_object_or_404(Layer, pk=object_id)
        if not self.has_view_or_change_permission(request, layer):
            raise PermissionDenied
        return layer


def layer_pks_by_ref() -> dict[str, int]:
    """Every layer's admin id by its ref, in one query: for pages that link many refs."""
    return {layer.ref: layer.pk for layer in Layer.objects.only("level", "name")}


def layer_link(ref: str, pks: dict[str, int]):
    """`ref` linked to its layer's page when it names a layer (audit targets also name contexts)."""
    if ref not in pks:
        return ref
    return format_html('<a href="{}">{}</a>', reverse("admin:config_registry_layer_change", args=[pks[ref]]), ref)


def _side(text: str):
    """A layer ref (global, environment:production, …) or a context (environment/service[/user])."""
    if text == "global" or ":" in text:
        return selectors.layer_side(selectors.layer_get(text))
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidInput(
            f"{text!r} is neither a layer (environment:production) nor a context (production/chat/alice)"
        )
    return selectors.context_side(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def _base_version(data, layer: Layer, *, required: bool = False) -> tuple[int, str | None]:
    """The form's base_version, or the layer's current one and what is wrong with the form's."""
    text = data.get("base_version")
    if text is None and not required:
        return layer.current_version, None
    if text is not None and text.strip().isdigit() and int(text) <= layer.current_version:
        return int(text), None
    return layer.current_version, (
        f"The form's base version ({text!r}) is not a version of {layer.ref}: "
        "reload the page and apply your change again (base_version)."
    )


def submitted_response(model_admin, request, change):
    """A write that became a change request: say so, and show the request."""
    needed = changes.change_required_approvals(change)
    when = f", to apply at {date_format(localtime(change.publish_at), 'DATETIME_FORMAT')}" if change.publish_at else ""
    model_admin.message_user(
        request,
        f"Submitted for approval as change request #{change.pk} ({needed} approval(s) needed{when}); "
        "nothing is published until then.",
        messages.SUCCESS,
    )
    return HttpResponseRedirect(reverse("admin:config_registry_changerequest_change", args=[change.pk]))


IMPORT_PLACE = "(import_env)"  # what a sealed import plan is bound to, besides its layer and base version
MAX_ENV_FILE = 1024 * 1024


class EnvUploadForm(forms.Form):
    file = forms.FileField(help_text="a .env file (python-dotenv's format) or the output of `env`")
    prefix = forms.CharField(required=False, help_text="import only the names with this prefix, the prefix removed")
    secret_names = forms.CharField(
        required=False,
        label="Also secret",
        help_text="names to store as secrets, comma-separated (names with PASSWORD, SECRET, TOKEN, KEY or "
        "CREDENTIAL are already)",
    )
    names = forms.CharField(
        required=False,
        label="Names to keys",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "placeholder": "DB_URL=database.url"}),
        help_text="one NAME=key per line, for names whose key is not the name lowered with _ as .",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_ENV_FILE:
            raise forms.ValidationError(f"at most {MAX_ENV_FILE // 1024} KiB")
        try:
            return upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("not UTF-8 text") from None

    def clean_names(self):
        names = {}
        for line in self.cleaned_data["names"].splitlines():
            if line.strip():
                name, sign, key = line.strip().partition("=")
                if not sign or not name.strip() or not key.strip():
                    raise forms.ValidationError(f"{line.strip()!r} is not NAME=key")
                names[name.strip()] = key.strip()
        return names

    def plan(self, known_keys) -> EnvPlan:
        data = self.cleaned_data
        secret_names = [name.strip() for name in data["secret_names"].split(",") if name.strip()]
        return env_plan(
            data["file"], known_keys=known_keys, prefix=data["prefix"], names=data["names"], secret_names=secret_names
        )


class PreviewForm(forms.Form):
    environment = forms.CharField(initial="production")
    service = forms.CharField(initial="chat")
    user = forms.CharField(required=False, help_text="a username; empty: the service level")
    revision = forms.IntegerField(required=False, min_value=1, help_text="empty: now; or a past revision")
    at = forms.DateTimeField(required=False, help_text="or a time (YYYY-MM-DD HH:MM, UTC): the revision then")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("revision") and cleaned.get("at"):
            raise forms.ValidationError("Give a revision or a time, not both.")
        return cleaned


@admin.register(LayerVersion)
class LayerVersionAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "revision", "author", "created_at", "comment"]
    list_filter = ["layer__level"]
    search_fields = ["layer__name", "author", "comment"]
    exclude = []

    def get_fields(self, request, obj=None):
        fields = ["layer", "number", "revision", "author", "created_at", "comment", "rolled_back_from"]
        return [*fields, "entries_shown"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="entries")
    def entries_shown(self, version):
        """The version's complete entry set, secrets masked."""
        entries, secrets = selectors.version_entries(version.layer, version.number)
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
            (
                (key, "secret" if key in secrets else json.dumps(entries[key], ensure_ascii=False))
                for key in sorted(entries)
            ),
        )
        return format_html('<table class="registry-entries"><tbody>{}</tbody></table>', rows) if entries else "none"


class KeyDefinitionForm(forms.ModelForm):
    schema = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 70}),
        help_text='a JSON Schema, e.g. {"type": "integer", "minimum": 1}',
    )
    default = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 70}),
        help_text="JSON; used when no layer defines the key (not for secrets)",
    )

    class Meta:
        model = KeyDefinition
        fields = ["key", "description", "schema", "secret", "has_default", "default"]

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        arguments = {
            "key": data.get("key") or self.instance.key,
            "description": data.get("description", ""),
            "schema": data.get("schema"),
            "secret": data.get("secret", False),
        }
        if data.get("has_default"):
            arguments["default"] = data.get("default")
        return arguments

    may_write_security = may_reveal = False  # set per request by KeyDefinitionAdmin.get_form

    def clean(self):
        cleaned = super().clean()
        key = cleaned.get("key") or self.instance.key
        if key in SECURITY_KEYS and not self.may_write_security:
            self.add_error(
                None,
                f"{key} is the registry's own security configuration: its definition needs the "
                "permission 'Can change the registry's security configuration'",
            )
        # A schema tests values: on a secret key, whether a rollback passes would tell its value bit by bit.
        schema_changed = cleaned.get("schema") != (self.instance.schema if self.instance.pk else None)
        if (
            schema_changed
            and cleaned.get("schema") is not None
            and not self.may_reveal
            and (cleaned.get("secret") or Entry.objects.filter(key=key, secret=True).exists())
        ):
            self.add_error(
                "schema",
                "this key holds secret values: changing its schema needs the permission "
                "'Can reveal secret values' (a schema can be used to test a secret)",
            )
        if not self.errors:
            arguments = self.service_arguments()
            arguments.pop("description")
            for field, problem in services.key_definition_problems(**arguments).items():
                self.add_error(field if field in self.fields else None, problem)
        return cleaned

    def validate_unique(self):
        pass  # an existing key is replaced by the service, not refused


class ReadRecentlyFilter(admin.SimpleListFilter):
    title = "read in the last 30 days"
    parameter_name = "read_in_30_days"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "Never read in 30 days")]

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        read = set(key_usage(since=recently(30)))
        return queryset.filter(key__in=read) if self.value() == "yes" else queryset.exclude(key__in=read)


@admin.register(KeyDefinition)
class KeyDefinitionAdmin(admin.ModelAdmin):
    form = KeyDefinitionForm
    list_display = ["key", "secret", "has_default", "description", "updated_by", "updated_at"]
    list_filter = ["secret", ReadRecentlyFilter]
    search_fields = ["key", "description"]

    def get_list_display(self, request):
        uses = key_usage()  # once per page: every counted context's keys

        @admin.display(description="last read")
        def last_read(definition):
            use = uses.get(definition.key)
            if use is None:
                return "never (since counting began)"
            return f"{date_format(localtime(use.last_read_at), 'DATETIME_FORMAT')} by {', '.join(sorted(use.tokens))}"

        return [*self.list_display, last_read]

    def get_readonly_fields(self, request, obj=None):
        return ["key"] if obj else []

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.may_write_security = request.user.has_perm(SECURITY_PERMISSION)
        form.may_reveal = request.user.has_perm(REVEAL_PERMISSION)
        return form

    def save_form(self, request, form, change):
        submitted = changes.definition_submit(**form.service_arguments(), actor=admin_actor(request))
        if submitted.change is None:
            return KeyDefinition.objects.get(key=form.service_arguments()["key"])
        request.submitted_change = submitted.change  # gated layers depend on it: proposed, not saved
        return form.instance

    def save_model(self, request, obj, form, change):
        pass  # key_definition_save stored it, audited

    def log_addition(self, request, obj, message):
        if not hasattr(request, "submitted_change"):
            super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if not hasattr(request, "submitted_change"):
            super().log_change(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        if hasattr(request, "submitted_change"):
            return submitted_response(self, request, request.submitted_change)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if hasattr(request, "submitted_change"):
            return submitted_response(self, request, request.submitted_change)
        return super().response_change(request, obj)

    def save_related(self, request, form, formsets, change):
        pass

    def has_delete_permission(self, request, obj=None):
        return False


class TokenCreateForm(forms.Form):
    name = forms.CharField(help_text="lowercase letters, digits, - and _")
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)
    environments = forms.CharField(required=False, help_text="comma-separated; empty: all")
    services = forms.CharField(required=False, help_text="comma-separated; empty: all")
    expires_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="in the server's time zone; empty: never",
    )


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        live = Q(revoked_at__isnull=True)
        if self.value() == "active":
            return queryset.filter(live & (Q(expires_at__isnull=True) | Q(expires_at__gt=now)))
        if self.value() == "expired":
            return queryset.filter(live, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ServiceToken)
class ServiceTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name", "prefix", "scope_list", "limits", "expires_at", "revoked_at", "last_used_at", "reads",
    ]  # fmt: skip

    @admin.display(description="scopes")
    def scope_list(self, token):
        return ", ".join(token.scopes)

    @admin.display(description="limited to")
    def limits(self, token):
        shown = [f"environments {', '.join(token.environments)}"] if token.environments else []
        shown += [f"services {', '.join(token.services)}"] if token.services else []
        return "; ".join(shown) or "no limits"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("usage")

    @admin.display(description="reads (times, last)")
    def reads(self, token):
        rows = sorted(token.usage.all(), key=lambda row: row.last_served_at, reverse=True)
        shown = [
            f"{row.environment}/{row.service}{'/' + row.user if row.user else ''} ({row.served:,}, "
            f"{date_format(localtime(row.last_served_at), 'SHORT_DATETIME_FORMAT')})"
            for row in rows[:3]
        ]
        return "; ".join(shown) + (f"; … {len(rows) - 3} more" if len(rows) > 3 else "") if rows else "—"

    list_filter = [TokenStateFilter, "expires_at"]
    search_fields = ["name", "prefix"]
    readonly_fields = [
        "name",
        "prefix",
        "scopes",
        "environments",
        "services",
        "created_at",
        "created_by",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = TokenCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            names = lambda text: [n.strip() for n in text.split(",") if n.strip()]  # noqa: E731
            try:
                token, raw = services.token_create(
                    name=data["name"],
                    scopes=data["scopes"],
                    environments=names(data["environments"]),
                    services=names(data["services"]),
                    expires_at=data["expires_at"],
                    actor=admin_actor(request),
                    grantable=grantable_scopes(request.user),
                )
            except InvalidInput as error:
                for field, problem in error.errors.items():
                    form.add_error(field if field in form.fields else None, problem)
            except PermissionRefused as error:
                form.add_error("scopes", str(error))
            else:
                self.log_addition(request, token, f"Created with the scopes {', '.join(token.scopes)}")
                response = TemplateResponse(
                    request,
                    "admin/config_registry/token_created.html",
                    {
                        **self.admin_site.each_context(request),
                        "opts": self.model._meta,
                        "token": token,
                        "raw": raw,
                        "title": f"Token {token.name} created",
                        "base_url": request.build_absolute_uri("/").rstrip("/"),
                        "example_environment": (token.environments or ["production"])[0],
                        "example_service": (token.services or ["chat"])[0],
                    },
                )
                response["Cache-Control"] = "no-store"
                return response
        return TemplateResponse(
            request,
            "admin/config_registry/token_add.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "form": form,
                "title": "Create a service token",
            },
        )

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        for token in queryset:
            services.token_revoke(token=token, actor=admin_actor(request))
            self.log_change(request, token, "Revoked")
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "at", "actor", "action", "target_link", "source"]
    list_filter = ["action", "actor", "at"]
    search_fields = ["actor", "target", "action"]
    date_hierarchy = "at"

    def get_fields(self, request, obj=None):
        return ["seq", "at", "actor", "action", "target_link", "source", "changes_shown", "prev_hash", "hash"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def get_list_display(self, request):
        pks = layer_pks_by_ref()  # once per page, not once per row

        @admin.display(description="target", ordering="target")
        def target(event):
            return layer_link(event.target, pks)

        return [target if name == "target_link" else name for name in self.list_display]

    @admin.display(description="target")
    def target_link(self, event):
        """A layer's events link to its page (layer events name its ref)."""
        return layer_link(event.target, layer_pks_by_ref())

    @admin.display(description="changes")
    def changes_shown(self, event):
        return format_html('<pre class="audit-changes">{}</pre>', json.dumps(event.changes, indent=2, sort_keys=True))

    def view_on_site(self, obj):
        return None

    def get_search_results(self, request, queryset, search_term):
        by_change = audit_search(queryset, search_term)
        if by_change is not None:
            return by_change, False
        return super().get_search_results(request, queryset, search_term)


admin.site.site_header = "Config Registry"
admin.site.login_form = ThrottledAdminAuthenticationForm  # sign-in throttled per account and address
admin.site.site_title = "Config Registry"
admin.site.index_title = "Configuration, secrets and their history"
