"""Sign-in throttling for /accounts/login/ and /admin/login/: failed attempts are counted per account
and per address in the shared cache; past the limit, every attempt is refused until the window ends."""

import hashlib

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.db import transaction

from .audit import Actor, audit_record
from .ratelimit import window_count, window_peek

WINDOW_SECONDS = 15 * 60
FAILURES_PER_ACCOUNT = 5
FAILURES_PER_ADDRESS = 20


def _names(username: str, address: str) -> list[tuple[str, int]]:
    account = hashlib.sha256(username.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]
    return [(f"signin:account:{account}", FAILURES_PER_ACCOUNT), (f"signin:address:{address}", FAILURES_PER_ADDRESS)]


def signin_wait(username: str, address: str) -> float | None:
    """Seconds until this account or address may try again, or None if it may now."""
    for name, limit in _names(username, address):
        count, wait = window_peek(name, WINDOW_SECONDS)
        if count >= limit:
            return wait
    return None


def signin_failed(username: str, address: str) -> None:
    """Count a failed attempt; the one that reaches a limit is audited (not every one after it)."""
    for name, limit in _names(username, address):
        count, _ = window_count(name, WINDOW_SECONDS)
        if count == limit:
            with transaction.atomic():
                audit_record(
                    actor=Actor(f"signin:{username[:100]}", address),
                    action="signin.throttled",
                    target=f"user:{username[:100]}",
                    changes={
                        "by": "account" if name.startswith("signin:account") else "address",
                        "failures": count,
                        "window_seconds": WINDOW_SECONDS,
                    },
                )


class ThrottledSignIn:
    """Mixed into Django's authentication forms: refuse while throttled, count failures."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        wait = signin_wait(username, address)
        if wait is not None:
            minutes = int(wait // 60) + 1
            raise forms.ValidationError(
                f"Too many failed sign-ins for this account or from your address: try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}.",
                code="throttled",
            )
        try:
            return super().clean()
        except forms.ValidationError:
            signin_failed(username, address)
            raise


class ThrottledAuthenticationForm(ThrottledSignIn, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledSignIn, AdminAuthenticationForm):
    pass
