"""Several server processes share PostgreSQL and Redis: a publish through one is seen by the
next resolve through another, and pushed to the watch sockets that other one holds."""

import asyncio
import json
import urllib.request

import pytest
from django.conf import settings

from config_registry.models import Layer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shared_services(postgres_only):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://… (the shared channel layer and cache)")


@pytest.fixture
def two_servers(shared_services, server_processes):
    return [server_processes()[0], server_processes()[0]]


def _http(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_publish_through_one_process__seen_and_pushed_by_the_other(two_servers, make_layer, make_token):
    import websockets

    make_layer("global", {"feature.flag": False})
    token = make_token("config:read", "config:write")
    first, second = two_servers
    resolve = f"http://{second}/api/v1/resolve?environment=prod&service=chat"

    async def scenario():
        async with websockets.connect(
            f"ws://{second}/ws/config/?environment=prod&service=chat",
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=60,
        ) as watch:
            initial = json.loads(await asyncio.wait_for(watch.recv(), 30))
            assert initial["values"] == {"feature.flag": False}
            assert (await asyncio.to_thread(_http, "GET", resolve, token))[1]["values"] == {"feature.flag": False}

            status, version = await asyncio.to_thread(
                _http,
                "POST",
                f"http://{first}/api/v1/layers/global/versions",
                token,
                {"base_version": 1, "set": {"feature.flag": True}},
            )
            assert (status, version["version"]) == (201, 2)

            answer = (await asyncio.to_thread(_http, "GET", resolve, token))[1]
            assert answer["values"] == {"feature.flag": True} and answer["revision"] > initial["revision"]
            pushed = json.loads(await asyncio.wait_for(watch.recv(), 30))
            assert (pushed["values"], pushed["revision"]) == ({"feature.flag": True}, answer["revision"])

    asyncio.run(scenario())
    assert Layer.objects.get(level="global").current_version == 2


def test_publishes_through_one_process__each_seen_by_the_very_next_resolve_through_the_other(
    two_servers, make_layer, make_token
):
    """Processes learn positions from the feed, not per request: no publish may be missed."""
    make_layer("global", {"counter": 0})
    token = make_token("config:read", "config:write")
    first, second = two_servers
    resolve = f"http://{second}/api/v1/resolve?environment=prod&service=chat"
    assert _http("GET", resolve, token)[1]["values"] == {"counter": 0}
    for number in range(1, 21):
        status, _ = _http(
            "POST",
            f"http://{first}/api/v1/layers/global/versions",
            token,
            {"base_version": number, "set": {"counter": number}},
        )
        assert status == 201
        assert _http("GET", resolve, token)[1]["values"] == {"counter": number}
