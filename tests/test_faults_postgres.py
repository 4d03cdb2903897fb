"""PostgreSQL out of reach and back, under a real server: clear 503s and 1013s, no 500 stack
traces, and recovery without a restart. The link is cut with a TCP proxy on loopback, so the
machine's PostgreSQL keeps running for everything else."""

import asyncio
import secrets

import pytest
from django.db import connection

from chat.tickets import ticket_issue
from tests.http import chat_outcome, get_json
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def database_proxy(postgres_only):
    db = connection.settings_dict
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)).start()
    yield proxy
    proxy.stop()


def test_postgres_cut_and_restored__503_and_1013_then_recovery(
    database_proxy, server_processes, make_layer, make_user, make_token, monkeypatch
):
    import tests.conftest as conftest

    make_user("alice")
    make_layer(
        "global",
        {"chat.signing_keys": [secrets.token_urlsafe(32)], "feature.flag": True},
        secrets=["chat.signing_keys"],
    )
    token = make_token("config:read")
    real_url = conftest._database_url()
    monkeypatch.setattr(
        conftest,
        "_database_url",
        lambda: real_url.replace(f":{connection.settings_dict['PORT'] or 5432}/", f":{database_proxy.port}/"),
    )
    address, log = server_processes()
    resolve = f"http://{address}/api/v1/resolve?environment=prod&service=chat"
    assert get_json(resolve, token)[0] == 200
    tickets = [ticket_issue(username="alice").token for _ in range(2)]

    database_proxy.cut()
    status, body = get_json(f"http://{address}/readyz")
    assert status == 503 and "database" in body["problems"]
    status, body = get_json(resolve, token)
    assert (status, body["error"]) == (503, "unavailable") and "retry" in body["message"]
    status, body = get_json(f"http://{address}/v1/sys/health")  # Vault's health: sealed while the database is away
    assert (status, body["sealed"]) == (503, True)
    assert asyncio.run(chat_outcome(address, tickets[0])) == ("error", 1013)

    database_proxy.restore()
    # The connection pool reconnects in the background; each probe waits for it up to its timeout,
    # as a load balancer's probes would.
    statuses = []
    while len(statuses) < 10 and 200 not in statuses:
        statuses.append(get_json(f"http://{address}/readyz")[0])
    assert statuses[-1] == 200, statuses
    assert get_json(resolve, token)[0] == 200
    assert asyncio.run(chat_outcome(address, tickets[1])) == ("history", None)
    logged = log.read_text()
    assert "Exception in ASGI application" not in logged and "Traceback" not in logged
