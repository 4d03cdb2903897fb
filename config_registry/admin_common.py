"""What the admin's modules share: who acts, the permissions, the schedule field, the approvals badge."""

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html

from .audit import Actor
from .exceptions import InvalidInput
from .models import Layer

SECURITY_PERMISSION = "config_registry.change_security_config"
APPROVE_PERMISSION = "config_registry.approve_changerequest"


def admin_actor(request) -> Actor:
    return Actor(
        f"admin:{request.user.get_username()}",
        request.META.get("REMOTE_ADDR", ""),
        may_write_security=request.user.has_perm(SECURITY_PERMISSION),
    )


def publish_at_field(data):
    """The form's optional 'publish at' (a browser's local date and time, in the server's time zone)."""
    text = (data.get("publish_at") or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("invalid schedule", {"publish_at": f"{text!r} is not a date and time"}) from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def approvals_badge(layer: Layer):
    if not layer.required_approvals:
        return ""
    return format_html(
        '<span class="badge gated" title="every change needs {} approval(s) by someone else">🔒 {} approval{}</span>',
        layer.required_approvals,
        layer.required_approvals,
        "" if layer.required_approvals == 1 else "s",
    )
