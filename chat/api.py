"""POST /api/v1/chat/ticket: a ticket for the signed-in user, or for a user a service names."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, permissions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from config_registry.api.authentication import ServicePrincipal, ServiceTokenAuthentication
from config_registry.api.serializers import ErrorSerializer
from config_registry.models import Scope

from .tickets import ticket_issue


class TicketRequestSerializer(serializers.Serializer):
    user = serializers.CharField(
        required=False, max_length=150, help_text="service tokens: the user to issue the ticket for"
    )


class MayRequestTicket(permissions.BasePermission):
    def has_permission(self, request, view):
        if isinstance(request.user, ServicePrincipal):
            if Scope.CHAT_TICKET not in request.auth.scopes:
                raise exceptions.PermissionDenied(f"token {request.auth.name!r} lacks the scope 'chat:ticket'")
            return True
        if request.user is None or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("sign in, or send a service token with the chat:ticket scope")
        return True


class TicketView(APIView):
    authentication_classes = [ServiceTokenAuthentication, SessionAuthentication]
    permission_classes = [MayRequestTicket]

    @extend_schema(
        operation_id="chat_ticket",
        request=TicketRequestSerializer,
        summary="A single-use chat ticket (JWT, 60 s) for ws/chat/<room>/?ticket=…",
        responses={
            200: inline_serializer(
                "ChatTicket", {"ticket": serializers.CharField(), "expires_in": serializers.IntegerField()}
            ),
            **{
                code: OpenApiResponse(ErrorSerializer, description=text)
                for code, text in {
                    400: "bad input",
                    401: "not signed in, or a bad token",
                    403: "scope, or not yourself",
                    404: "no such user",
                    429: "too many requests",
                    503: "chat.signing_keys is not published in the registry",
                }.items()
            },
        },
    )
    def post(self, request):
        serializer = TicketRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        named = serializer.validated_data.get("user")
        if isinstance(request.user, ServicePrincipal):
            if not named:
                raise exceptions.ValidationError({"user": "name the user the ticket is for"})
            user = get_user_model().objects.filter(username=named).first()
            if user is None:
                raise exceptions.NotFound(f"user {named!r} does not exist")
            if not user.is_active:
                raise exceptions.PermissionDenied(f"user {named!r} is inactive")
        else:
            user = request.user
            if named and named != user.username:
                raise exceptions.PermissionDenied("a signed-in user gets tickets for themselves only")
        ticket = ticket_issue(username=user.username)
        return Response({"ticket": ticket.token, "expires_in": ticket.expires_in})
