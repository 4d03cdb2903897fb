"""Receivers for changes outside the registry that alter resolution: users and their groups."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete
from django.dispatch import receiver


@receiver(m2m_changed, sender=get_user_model().groups.through)
def membership_changed(sender, action, **kwargs) -> None:
    # A user joining or leaving a group changes which group layers apply: move the revision so
    # caches keyed by revision and live consumers see it.
    if action in ("post_add", "post_remove", "post_clear"):
        from .services import revision_bump

        revision_bump()


@receiver(post_delete, sender=get_user_model())
def user_deleted(sender, **kwargs) -> None:
    # Cached resolutions of a deleted user must not outlive them.
    from .services import revision_bump

    revision_bump()
