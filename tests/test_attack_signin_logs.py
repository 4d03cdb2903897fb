"""The adversarial review of issue #11: sign-in brute force, and credentials in query strings
spelled so that the log redaction missed them."""

import logging

import pytest
from django.contrib.auth.models import User

from config_registry.models import AuditEvent
from project.logging import RedactSecrets

pytestmark = pytest.mark.django_db
TICKET = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


# 14. Sign-in brute force ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_signin__40_wrong_passwords__throttled_and_the_right_one_refused_too(client, path):
    User.objects.create_user("alice", password="right-password", is_staff=True)
    answers = [client.post(path, {"username": "alice", "password": f"guess-{n}"}) for n in range(40)]
    assert all(answer.status_code == 200 for answer in answers)  # the form again, never a sign-in
    assert "Too many failed sign-ins" in answers[-1].content.decode()
    right = client.post(path, {"username": "alice", "password": "right-password"})
    assert right.status_code == 200 and "Too many failed sign-ins" in right.content.decode()
    assert "_auth_user_id" not in client.session
    throttled = AuditEvent.objects.filter(action="signin.throttled")
    assert throttled.count() == 1 and throttled.get().target == "user:alice"


def test_signin__many_accounts_from_one_address__throttled_per_address(client):
    for n in range(25):
        client.post("/accounts/login/", {"username": f"user{n}", "password": "wrong"})
    User.objects.create_user("zed", password="right-password")
    answer = client.post("/accounts/login/", {"username": "zed", "password": "right-password"})
    assert "Too many failed sign-ins" in answer.content.decode()


def test_signin__a_few_mistakes__then_the_right_password_signs_in(client):
    User.objects.create_user("alice", password="right-password")
    for n in range(3):
        client.post("/accounts/login/", {"username": "alice", "password": f"typo-{n}"})
    answer = client.post("/accounts/login/", {"username": "alice", "password": "right-password"})
    assert answer.status_code == 302 and "_auth_user_id" in client.session


# 15. Log redaction after percent-decoding -----------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"ticket={TICKET}",
        f"tick%65t={TICKET}",
        f"%74icket={TICKET}",
        f"x=1&TOKEN={TICKET}",
        f"access%5Ftoken={TICKET}",
        f"x=1;ticket={TICKET}",
    ],
)
def test_redact__any_spelling_of_a_credential_parameter__redacted(query):
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/ws/chat/lobby/?{query}"),
        None,
    )
    assert RedactSecrets().filter(record)
    assert TICKET not in record.getMessage() and "[redacted]" in record.getMessage()


def test_redact__server_accepts_the_decoded_name__so_the_log_redacts_it():
    from urllib.parse import parse_qs

    assert parse_qs(f"tick%65t={TICKET}") == {"ticket": [TICKET]}  # what the chat consumer reads
