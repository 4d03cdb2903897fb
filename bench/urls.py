"""The product's URLs, plus the baselines the benchmarks compare against."""

from constance import config
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from project.urls import urlpatterns as product_urls


class BareView(APIView):
    """The least a DRF endpoint of this app can do: no authentication, no throttle, no database."""

    authentication_classes, permission_classes, throttle_classes = [], [AllowAny], []

    def get(self, request):
        return Response({"ok": True})


class ConstanceView(BareView):
    """django-constance reading 50 settings, the way a settings-in-the-database app does."""

    def get(self, request):
        return Response({name: getattr(config, name) for name in (f"SETTING_{i}" for i in range(50))})


urlpatterns = [
    path("bench/bare", BareView.as_view()),
    path("bench/constance", ConstanceView.as_view()),
    *product_urls,
]
