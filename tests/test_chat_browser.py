"""The chat page in real Chromium (Debian's package, driven by Playwright): two people chat."""

import json
import secrets
import urllib.request

import pytest

from tests.conftest import SCREENSHOTS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(settings, make_layer):
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    # The server process checks passwords with the real hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    for name in ("alice", "bob"):
        User.objects.create(username=name, password=make_password(f"pw-{name}"))
    make_layer(
        "global",
        {
            "chat.signing_keys": [secrets.token_urlsafe(32)],
            "chat.max_message_length": 200,
            "chat.rate_limit_per_minute": 30,
        },
        secrets=["chat.signing_keys"],
    )


def _sign_in(browser, base: str, name: str):
    page = browser.new_context(viewport={"width": 900, "height": 640}).new_page()
    page.goto(f"{base}/chat/?room=lobby")
    assert "/accounts/login/" in page.url  # the page is for signed-in users
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", f"pw-{name}")
    page.click("button[type=submit]")
    page.wait_for_url("**/chat/?room=lobby")
    page.wait_for_selector("#status:has-text('#lobby')")
    page.wait_for_selector("#send:not([disabled])")
    return page


def test_chat_page__two_people_signed_in__see_each_others_messages(people, server_processes, chromium):
    address, log = server_processes()
    base = f"http://{address}"
    alice, bob = _sign_in(chromium, base, "alice"), _sign_in(chromium, base, "bob")

    alice.fill("#text", "Hello Bob, from Chromium!")
    alice.click("#send")
    bob.wait_for_selector("#messages li:has-text('Hello Bob, from Chromium!')")
    bob.fill("#text", "Hi Alice 👋")
    bob.press("#text", "Enter")
    alice.wait_for_selector("#messages li:has-text('Hi Alice 👋')")

    assert alice.locator("#messages li").count() == 2
    assert alice.locator("#messages li .user").all_inner_texts() == ["alice", "bob"]
    assert "200 characters" in alice.inner_text("#limits")
    assert alice.locator("#error").is_hidden()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    alice.screenshot(path=SCREENSHOTS / "chat-alice.png", full_page=True)
    bob.screenshot(path=SCREENSHOTS / "chat-bob.png", full_page=True)
    assert "ticket=[redacted]" in log.read_text()


@pytest.fixture
def bob_only_in_support(people, make_layer):
    make_layer("user:bob", {"chat.allowed_rooms": ["support"]})


def test_chat_page__room_not_allowed__error_shown(bob_only_in_support, server_processes, chromium):
    address, _ = server_processes()
    page = chromium.new_page()
    page.goto(f"http://{address}/accounts/login/?next=/chat/%3Froom%3Dlobby")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", "pw-bob")
    page.click("button[type=submit]")
    page.wait_for_selector("#error:has-text(\"room 'lobby' is not among this user's chat.allowed_rooms\")")
    page.wait_for_selector("#status:has-text('4403')")
    assert page.locator("#send").is_disabled()


@pytest.fixture
def alice_in_the_dark(people, make_layer):
    make_layer("user:alice", {"feature.dark_mode": True, "chat.welcome_message": "Welcome back, Alice!"})


def test_chat_page__welcome_and_dark_mode_live__long_words_wrap__over_long_refused(
    alice_in_the_dark, server_processes, chromium, make_token
):
    address, _ = server_processes()
    alice = _sign_in(chromium, f"http://{address}", "alice")
    alice.wait_for_selector("body.dark")
    assert alice.inner_text("#welcome") == "Welcome back, Alice!"
    word = "x" * 150  # one unbroken word, within the 200-character limit
    alice.fill("#text", word)
    alice.click("#send")
    alice.wait_for_selector(f"#messages li:has-text('{word[:20]}')")
    wraps = alice.evaluate(
        "() => { const m = document.getElementById('messages'); return m.scrollWidth <= m.clientWidth; }"
    )
    assert wraps
    alice.fill("#text", "y" * 250)  # a paste over the limit: refused with the server's words, not cut short
    alice.click("#send")
    alice.wait_for_selector("#error:has-text('messages are at most 200 characters; this one has 250')")
    assert alice.input_value("#text") == "y" * 250 and alice.locator("#messages li").count() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    alice.screenshot(path=SCREENSHOTS / "chat-dark-mode.png", full_page=True)
    # Published through the server (whose process the page's socket is in: embedded, there is no Redis
    # to carry the announcement between processes), the change reaches the page live, without a reload.
    body = json.dumps({"base_version": 1, "set": {"feature.dark_mode": False}}).encode()
    headers = {"Authorization": f"Bearer {make_token('config:write')}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"http://{address}/api/v1/layers/user:alice/versions", body, headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
    alice.wait_for_selector("body:not(.dark)")
    assert alice.inner_text("#welcome") == "Welcome back, Alice!"
