"""Small clients for tests against real servers: a JSON GET, and a chat connection attempt."""

import asyncio
import json
import urllib.error
import urllib.request

import pytest
import websockets


def get_json(url: str, token: str | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a GET, with a bearer token if given; error statuses are answers too."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def chat_outcome(address: str, ticket: str) -> tuple[str, int | None]:
    """Connect to the chat: ("history", None) when admitted, ("error", close code) when refused."""
    async with websockets.connect(f"ws://{address}/ws/chat/lobby/?ticket={ticket}", open_timeout=60) as socket_:
        first = json.loads(await asyncio.wait_for(socket_.recv(), 60))
        if first["type"] == "error":
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket_.recv(), 60)
            return "error", closed.value.rcvd.code
        return first["type"], None
