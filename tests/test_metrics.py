"""GET /metrics (Prometheus's text format, parsed with prometheus_client's own parser): protected by the
scope metrics:read or an address allow-list; requests by route and code, resolve answers by source,
publishes and audit events, open WebSockets."""

import asyncio
import json

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db


def _samples(response) -> dict:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def _metrics(client, token: str) -> dict:
    return _samples(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}"))


def test_metrics__protected__token_scope_or_allowed_address(client, make_token, settings):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer crt_wrong").status_code == 401
    refused = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {make_token('config:read')}")
    assert refused.status_code == 403 and "metrics:read" in refused.json()["message"]
    assert _metrics(client, make_token("metrics:read"))
    settings.METRICS_ALLOWED_ADDRESSES = ["10.0.0.7"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.8").status_code == 401


def test_metrics__requests_resolves_publishes_audit(
    client, make_layer, make_token, actor, django_capture_on_commit_callbacks
):
    from config_registry.selectors import layer_get
    from config_registry.services import version_publish

    make_layer("global", {"chat.max": 3})
    reader, scraper = make_token("config:read"), make_token("metrics:read")
    resolve = {"environment": "production", "service": "chat"}
    ok = ("config_registry_http_requests_total", (("code", "200"), ("endpoint", "api/v1/resolve"), ("method", "GET")))
    denied = (
        "config_registry_http_requests_total",
        (("code", "401"), ("endpoint", "api/v1/resolve"), ("method", "GET")),
    )
    memory = ("config_registry_resolve_answers_total", (("source", "memory"),))
    published = ("config_registry_publishes_total", (("action", "version.publish"),))
    audited = ("config_registry_audit_events_total", (("action", "version.publish"),))
    before = _metrics(client, scraper)
    for _ in range(3):
        assert client.get("/api/v1/resolve", resolve, HTTP_AUTHORIZATION=f"Bearer {reader}").status_code == 200
    client.get("/api/v1/resolve", resolve)
    with django_capture_on_commit_callbacks(execute=True):
        version_publish(layer=layer_get("global"), base_version=1, set_={"chat.max": 4}, actor=actor)
    after = _metrics(client, scraper)
    assert after[ok] - before.get(ok, 0) == 3 and after[denied] - before.get(denied, 0) == 1
    assert after[memory] - before.get(memory, 0) == 2  # the first resolve was resolved, the next two remembered
    assert after[published] - before.get(published, 0) == 1 and after[audited] - before.get(audited, 0) == 1
    latency = ("config_registry_http_request_seconds_count", (("endpoint", "api/v1/resolve"),))
    assert after[latency] - before.get(latency, 0) == 4


@pytest.mark.django_db(transaction=True)
def test_metrics__open_watch_sockets_counted(asgi_server, make_layer, make_token):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families as parse

    make_layer("global", {"chat.max": 3})
    reader, scraper = make_token("config:read"), make_token("metrics:read")

    def watching() -> float:
        request = urllib.request.Request(
            f"http://{asgi_server}/metrics", headers={"Authorization": f"Bearer {scraper}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        samples = {(s.name, tuple(s.labels.items())): s.value for f in parse(text) for s in f.samples}
        return samples.get(("config_registry_websockets", (("kind", "watch"),)), 0)

    async def watch() -> tuple[float, float]:
        url = f"ws://{asgi_server}/ws/config/?environment=production&service=chat"
        before = await asyncio.to_thread(watching)
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {reader}"}) as socket:
            assert json.loads(await asyncio.wait_for(socket.recv(), 30))["type"] == "config"
            during = await asyncio.to_thread(watching)
        return before, during

    before, during = asyncio.run(watch())
    assert during - before == 1
