"""The Node clients SPEC §9 names — node-vault, cloud-config-client, the OpenFeature server SDK with
@openfeature/ofrep-provider — unmodified, against a live uvicorn (tests/node/clients.mjs drives them).
Needs Node.js and `npm ci --prefix tests/node` (.ci/run does both); skips, saying so, without them."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from config_registry.models import AuditEvent
from config_registry.selectors import registry_position

pytestmark = pytest.mark.django_db(transaction=True)
NODE_CLIENTS = Path(__file__).resolve().parent / "node"


@pytest.fixture
def node():
    node = shutil.which("node")
    if node is None or not (NODE_CLIENTS / "node_modules").is_dir():
        pytest.skip("needs Node.js and the clients: npm ci --prefix tests/node (.ci/run installs them)")
    return node


def test_node_clients__vault_spring_and_ofrep__as_their_users_call_them(node, asgi_server, make_layer, make_token):
    alice = User.objects.create(username="alice")
    alice.groups.add(Group.objects.create(name="beta"))
    make_layer(
        "global", {"log.level": "info", "db.password": "hunter2", "feature.dark_mode": False}, secrets=["db.password"]
    )
    make_layer("environment:production", {"log.level": "warn"})
    make_layer("environment:staging", {"log.level": "debug"})
    make_layer("service:chat", {"chat.max": 3})
    make_layer("group:beta", {"feature.dark_mode": True})
    revision = registry_position().revision
    tokens = {
        "vault": make_token("config:read", "config:write", "secrets:read", name="node"),
        "reader": make_token("config:read"),
        "flags": make_token("config:read", environments=["production"], services=["chat"]),
    }
    given = json.dumps({"address": asgi_server, "tokens": tokens, "revision": revision})
    run = subprocess.run(
        [node, "clients.mjs"], input=given, capture_output=True, text=True, cwd=NODE_CLIENTS, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)

    assert got["vault.read"]["data"] == {"chat.max": 3} and got["vault.read"]["metadata"]["version"] == 1
    assert got["vault.write_cas"]["version"] == 2  # node-vault takes 200 (it refuses a 201)
    assert got["vault.write_stale_cas"]["error"]["status"] == 400
    assert "check-and-set" in got["vault.write_stale_cas"]["error"]["message"]
    assert got["vault.read_version_1"] == {"chat.max": 3}
    assert got["vault.list"] == got["vault.list_by_get"] == ["production", "staging"]  # LIST, and GET ?list=1
    assert got["vault.config"]["chat.max"] == 5 and got["vault.config"]["db.password"] == "hunter2"
    assert got["vault.secret_without_scope"]["error"]["status"] == 403
    assert "secrets:read" in got["vault.secret_without_scope"]["error"]["message"]
    assert got["vault.lookup_self"] == ["config:read", "config:write", "secrets:read"]
    assert got["vault.health"]["sealed"] is False and got["vault.health"]["initialized"] is True
    assert got["vault.bad_token"]["error"] == {"status": 403, "message": "permission denied"}
    assert AuditEvent.objects.filter(action="version.publish", target="service:chat").count() == 2

    assert got["spring.load"] == {"max": 5, "level": "warn", "password": "hunter2"}
    assert got["spring.label"] == 3  # the revision before the Vault write
    assert "401" in got["spring.bad_token"]["error"]["message"]

    assert got["ofrep.targeted"] == {"value": True, "reason": "TARGETING_MATCH", "variant": "group:beta@1"}
    assert got["ofrep.static"] == {"value": False, "reason": "STATIC"}
    assert got["ofrep.secret"] == {"value": "fallback", "errorCode": "FLAG_NOT_FOUND"}
    assert got["ofrep.missing"] == {"value": "fallback", "errorCode": "FLAG_NOT_FOUND"}
