"""POST /api/v1/chat/ticket: for the signed-in user, or for a user named by a service token."""

import secrets
import time

import jwt
import pytest

from chat.tickets import LIFETIME_SECONDS, key_id, ticket_verify

KEY = "chat.signing_keys"
TICKET = "/api/v1/chat/ticket"


@pytest.fixture
def keys(make_layer, make_user):
    make_user("alice")
    make_user("bob")
    signing = [secrets.token_urlsafe(32), secrets.token_urlsafe(32)]
    make_layer("global", {KEY: signing}, secrets=[KEY])
    return signing


def test_ticket__signed_in_user__short_lived_single_use_jwt_signed_with_the_first_key(client, keys):
    client.login(username="alice", password="pw-alice")
    response = client.post(TICKET, {}, content_type="application/json")
    assert response.status_code == 200 and response.json()["expires_in"] == LIFETIME_SECONDS == 60
    token = response.json()["ticket"]
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "kid": key_id(keys[0]), "typ": "JWT"}
    assert keys[0] not in token and keys[0][:8] not in header["kid"]
    claims = jwt.decode(token, keys[0], algorithms=["HS256"], audience="chat")
    assert claims["sub"] == "alice" and 0 < claims["exp"] - time.time() <= 60 and claims["jti"]
    assert ticket_verify(token).username == "alice"


def test_ticket__signed_in_user__cannot_get_one_for_someone_else(client, keys):
    client.login(username="alice", password="pw-alice")
    response = client.post(TICKET, {"user": "bob"}, content_type="application/json")
    assert response.status_code == 403 and "themselves" in response.json()["message"]


def test_ticket__session_without_csrf_token__refused(keys):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.login(username="alice", password="pw-alice")
    assert strict.post(TICKET, {}, content_type="application/json").status_code == 403


def test_ticket__service_token_with_chat_ticket__for_the_named_user(api, keys, make_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('chat:ticket')}")
    response = api.post(TICKET, {"user": "bob"}, format="json")
    assert response.status_code == 200
    assert ticket_verify(response.json()["ticket"]).username == "bob"
    assert api.post(TICKET, {}, format="json").status_code == 400
    assert api.post(TICKET, {"user": "nobody"}, format="json").status_code == 404


def test_ticket__service_token_without_scope_or_anonymous__refused(api, client, keys, make_token):
    assert client.post(TICKET, {}, content_type="application/json").status_code in (401, 403)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('config:read')}")
    response = api.post(TICKET, {"user": "bob"}, format="json")
    assert response.status_code == 403 and "chat:ticket" in response.json()["message"]


def test_ticket__no_signing_keys_in_registry__503_naming_the_key_and_no_fallback(client, make_user, settings):
    make_user("alice")
    settings.SECRET_KEY = "x" * 64  # a secret that exists elsewhere must never be used instead
    client.login(username="alice", password="pw-alice")
    response = client.post(TICKET, {}, content_type="application/json")
    assert response.status_code == 503
    assert response.json()["error"] == "not_configured"
    assert "chat.signing_keys is not published" in response.json()["message"]


def test_ticket__consumed_at_the_same_moment_as_others__each_ticket_once(keys):
    """Handshakes record their tickets together (one Redis round trip for those of the moment):
    grouped or not, a ticket presented five times at once is let in once, and others are not held up."""
    import asyncio

    from chat.tickets import TicketInvalid, ticket_claims, ticket_consume_async, ticket_issue

    reused = ticket_claims(ticket_issue(username="alice").token, keys)
    others = [ticket_claims(ticket_issue(username="bob").token, keys) for _ in range(5)]

    async def consume(claims) -> bool:
        try:
            await ticket_consume_async(claims)
            return True
        except TicketInvalid:
            return False

    async def at_once():
        return await asyncio.gather(*(consume(claims) for claims in [reused] * 5 + others))

    outcomes = asyncio.run(at_once())
    assert sum(outcomes[:5]) == 1 and outcomes[5:] == [True] * 5
