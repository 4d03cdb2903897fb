"""/api/v1/ routes. Layer refs (global, user:alice, …) are path segments."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ..protocols.openapi import schema_urls
from . import views
from .errors import json_not_found

REF = "<str:ref>"

urlpatterns = [
    path("resolve", views.ResolveView.as_view(), name="api-resolve"),
    path("me/config", views.MeConfigView.as_view(), name="api-me-config"),
    path("layers", views.LayerListView.as_view(), name="api-layers"),
    path(f"layers/{REF}", views.LayerDetailView.as_view(), name="api-layer"),
    path(f"layers/{REF}/versions", views.VersionListView.as_view(), name="api-versions"),
    path(f"layers/{REF}/versions/<int:number>", views.VersionDetailView.as_view(), name="api-version"),
    path(f"layers/{REF}/rollback", views.RollbackView.as_view(), name="api-rollback"),
    path(f"layers/{REF}/diff", views.DiffView.as_view(), name="api-diff"),
    path("keys/<str:key>", views.KeyView.as_view(), name="api-key"),
    path("compare", views.CompareView.as_view(), name="api-compare"),
    path("audit", views.AuditListView.as_view(), name="api-audit"),
    path("changes", views.ChangeListView.as_view(), name="api-changes"),
    path("changes/<int:change_id>", views.ChangeDetailView.as_view(), name="api-change"),
    path("changes/<int:change_id>/approve", views.ChangeApproveView.as_view(), name="api-change-approve"),
    path("changes/<int:change_id>/reject", views.ChangeRejectView.as_view(), name="api-change-reject"),
    path("changes/<int:change_id>/apply", views.ChangeApplyView.as_view(), name="api-change-apply"),
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    *schema_urls(),  # the drop-in protocols' own documents (SPEC §9)
    re_path(r"^.*$", json_not_found),
]
