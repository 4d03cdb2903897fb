"""Receivers for changes outside the registry that alter resolution: group membership."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed
from django.dispatch import receiver


@receiver(m2m_changed, sender=get_user_model().groups.through)
def membership_changed(sender, action, **kwargs) -> None:
    # A user joining or leaving a group changes which group layers apply: move the revision so
    # caches keyed by revision and live consumers see it.
    if action in ("post_add", "post_remove", "post_clear"):
        from .services import revision_bump

        revision_bump()
