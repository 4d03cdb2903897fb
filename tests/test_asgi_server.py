"""The real ASGI server (uvicorn) serves the admin, static files and health probes."""

import json
import urllib.error
import urllib.request

import pytest


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def test_asgi_server__admin_login_page_and_its_css__served(asgi_server):
    status, _, body = _get(f"http://{asgi_server}/admin/login/")
    assert status == 200 and b"Log in | Config Registry" in body
    status, content_type, _ = _get(f"http://{asgi_server}/static/admin/css/base.css")
    assert status == 200 and content_type.startswith("text/css")


def test_asgi_server__health_probes__alive_and_ready(asgi_server):
    assert _get(f"http://{asgi_server}/healthz")[0] == 200
    status, _, body = _get(f"http://{asgi_server}/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready"})


def test_readyz__database_unreachable__503_naming_it(client, database_cursor_fails):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == {"database": "unreachable: could not connect to server"}


@pytest.mark.parametrize("path", ["/ws/nowhere/"])
def test_asgi_server__websocket_from_foreign_origin__refused(asgi_server, path):
    import asyncio

    import websockets
    from websockets.exceptions import InvalidStatus

    async def connect():
        async with websockets.connect(f"ws://{asgi_server}{path}", origin="http://evil.example"):
            pass

    with pytest.raises(InvalidStatus) as raised:
        asyncio.run(connect())
    assert raised.value.response.status_code == 403
