"""OFREP (SPEC §9.3) driven by the real OpenFeature SDK with its OFREP provider against a live uvicorn,
plus raw HTTP for the bulk evaluation (ETag, 304), error bodies and Retry-After."""

import json
import urllib.error
import urllib.request

import pytest
from django.contrib.auth.models import Group, User
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def registry(make_layer):
    alice = User.objects.create(username="alice")
    alice.groups.add(Group.objects.create(name="beta"))
    values = {"feature.dark_mode": False, "limit": 3, "ratio": 3.0, "db.password": "s"}
    make_layer("global", values, secrets=["db.password"])
    make_layer("service:chat", {"chat.welcome": "yes"})
    make_layer("group:beta", {"feature.dark_mode": True})


@pytest.fixture
def client(asgi_server, make_token):
    """An OpenFeature client on the OFREP provider, for a token limited to production and chat."""
    token = make_token("config:read", "secrets:read", environments=["production"], services=["chat"])
    provider = OFREPProvider(f"http://{asgi_server}", headers_factory=lambda: {"Authorization": f"Bearer {token}"})
    api.set_provider(provider, domain="registry")
    yield api.get_client("registry")
    api.clear_providers()


def _post(asgi_server: str, path: str, body, headers: dict):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{asgi_server}{path}", data=data, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_ofrep__sdk_evaluates__static_and_targeted(registry, client):
    alice = EvaluationContext(targeting_key="alice")
    details = client.get_boolean_details("feature.dark_mode", False, alice)
    assert details.value is True and details.reason == Reason.TARGETING_MATCH and details.variant == "group:beta@1"
    assert details.flag_metadata["layer"] == "group:beta" and details.flag_metadata["revision"] > 0
    service_level = client.get_boolean_details("feature.dark_mode", True)  # no targetingKey: the service's view
    assert service_level.value is False and service_level.reason == Reason.STATIC
    assert client.get_integer_value("limit", 0, alice) == 3
    assert client.get_float_value("ratio", 0.0, alice) == 3.0  # 3.0 stays a float
    assert client.get_string_value("chat.welcome", "", alice) == "yes"


def test_ofrep__sdk_errors__flag_not_found_secret_invalid_context(registry, client):
    missing = client.get_string_details("nope", "fallback")
    assert missing.value == "fallback" and missing.error_code == ErrorCode.FLAG_NOT_FOUND
    secret = client.get_string_details("db.password", "fallback")
    assert secret.value == "fallback" and secret.error_code == ErrorCode.FLAG_NOT_FOUND
    assert "secret" in secret.error_message
    nobody = client.get_boolean_details("feature.dark_mode", False, EvaluationContext(targeting_key="nobody"))
    assert nobody.error_code == ErrorCode.INVALID_CONTEXT
    mismatch = client.get_string_details("feature.dark_mode", "")
    assert mismatch.error_code == ErrorCode.TYPE_MISMATCH


def test_ofrep__bulk__every_non_secret_flag__etag_then_304(registry, asgi_server, make_token):
    headers = {"X-API-Key": make_token("config:read")}
    body = {"context": {"targetingKey": "alice", "environment": "production", "service": "chat"}}
    status, answer_headers, raw = _post(asgi_server, "/ofrep/v1/evaluate/flags", body, headers)
    flags = {flag["key"]: flag for flag in json.loads(raw)["flags"]}
    assert status == 200 and set(flags) == {"feature.dark_mode", "limit", "ratio", "chat.welcome"}
    assert flags["ratio"]["value"] == 3.0 and b'"value": 3.0' in raw and b'"value": 3,' in raw
    etag = answer_headers["ETag"]
    status, _, raw = _post(asgi_server, "/ofrep/v1/evaluate/flags", body, {**headers, "If-None-Match": etag})
    assert (status, raw) == (304, b"")


def test_ofrep__raw_errors__always_key_code_details(registry, asgi_server, make_token, settings):
    token = make_token("config:read")
    path = "/ofrep/v1/evaluate/flags/limit"
    cases = [
        ({}, {"context": {"environment": "production", "service": "chat"}}, 401, "GENERAL"),
        ({"X-API-Key": token}, b"{not json", 400, "PARSE_ERROR"),
        ({"X-API-Key": token}, {"context": {"service": "chat"}}, 400, "INVALID_CONTEXT"),
        ({"X-API-Key": make_token("config:write")}, {"context": {"environment": "p", "service": "c"}}, 403, "GENERAL"),
    ]
    for headers, body, status, code in cases:
        got, _, raw = _post(asgi_server, path, body, headers)
        answer = json.loads(raw)
        assert (got, answer["errorCode"], answer["key"]) == (status, code, "limit"), answer
        assert answer["errorDetails"]
    body = {"context": {"environment": "production", "service": "chat"}}
    got, _, raw = _post(asgi_server, path, body, {"X-API-Key": make_token("config:read", environments=["staging"])})
    assert got == 403 and "limited to" in json.loads(raw)["errorDetails"]
    for slashed in ("/ofrep/v1/evaluate/flags/team/flag", "/ofrep/v1/evaluate/flags/team%2Fflag"):
        got, _, raw = _post(asgi_server, slashed, body, {"X-API-Key": token})  # keys with "/" reach the evaluation
        assert (got, json.loads(raw)["errorCode"], json.loads(raw)["key"]) == (404, "FLAG_NOT_FOUND", "team/flag")
    settings.API_THROTTLE_RATE = "1/min"
    body = {"context": {"environment": "production", "service": "chat"}}
    answers = [_post(asgi_server, path, body, {"X-API-Key": token}) for _ in range(3)]
    status, headers, raw = answers[-1]
    assert status == 429 and headers["Retry-After"].isdigit() and json.loads(raw)["errorCode"] == "GENERAL"


def test_ofrep__bulk__a_publish_changes_the_etag__any_accept_answered_in_json(registry, asgi_server, make_token, actor):
    from config_registry.selectors import layer_get
    from config_registry.services import version_publish

    headers = {"Authorization": f"Bearer {make_token('config:read')}", "Accept": "text/html"}
    body = {"context": {"environment": "production", "service": "chat"}}
    status, answer_headers, raw = _post(asgi_server, "/ofrep/v1/evaluate/flags", body, headers)
    assert status == 200 and answer_headers["Content-Type"] == "application/json"
    etag = answer_headers["ETag"]
    version_publish(layer=layer_get("service:chat"), base_version=1, set_={"chat.welcome": "hello"}, actor=actor)
    status, answer_headers, raw = _post(
        asgi_server, "/ofrep/v1/evaluate/flags", body, {**headers, "If-None-Match": etag}
    )
    flags = {flag["key"]: flag["value"] for flag in json.loads(raw)["flags"]}
    assert status == 200 and flags["chat.welcome"] == "hello" and answer_headers["ETag"] != etag
    alice = {"context": {**body["context"], "targetingKey": "alice"}}
    status, alice_headers, _ = _post(asgi_server, "/ofrep/v1/evaluate/flags", alice, headers)
    assert status == 200 and alice_headers["ETag"] != answer_headers["ETag"]  # an ETag is per context
    nobody = {"context": {**body["context"], "targetingKey": "nobody"}}
    status, _, raw = _post(asgi_server, "/ofrep/v1/evaluate/flags", nobody, headers)
    assert status == 400 and json.loads(raw)["errorCode"] == "INVALID_CONTEXT"
