"""A small HTTP client for tests against real servers."""

import json
import urllib.error
import urllib.request


def get_json(url: str, token: str | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a GET, with a bearer token if given; error statuses are answers too."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
