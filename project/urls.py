"""URL map: admin, API, chat, sign-in, health. No views here."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat.api import TicketView
from chat.views import chat_page
from config_registry import health, pages
from config_registry.signin import ThrottledAuthenticationForm

urlpatterns = [
    path("", pages.home, name="home"),
    path("admin/", admin.site.urls),
    path("api/v1/chat/ticket", TicketView.as_view(), name="api-chat-ticket"),
    path("api/v1/", include("config_registry.api.urls")),
    path("v1/", include("config_registry.protocols.vault")),  # Vault KV v2 (SPEC §9.1)
    path("spring/", include("config_registry.protocols.spring")),  # Spring Cloud Config (SPEC §9.2)
    path("ofrep/v1/", include("config_registry.protocols.ofrep")),  # OpenFeature remote evaluation (SPEC §9.3)
    path("chat/", chat_page, name="chat"),
    path(
        "accounts/login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),  # Prometheus (token with metrics:read, or allowed addresses)
]
