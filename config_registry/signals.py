"""Receivers that keep caches true: users and their groups move the revision, tokens the token generation."""

from django.contrib.auth import get_user_model
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from .models import MembershipRecord, ServiceToken
from .services import memberships_record, revision_bump
from .state import broadcaster_reset, locked_state


@receiver(m2m_changed, sender=get_user_model().groups.through)
def membership_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    # A user joining or leaving a group changes which group layers apply: recorded by revision.
    if action == "pre_clear":  # the pairs a clear removes are known only before it
        current = MembershipRecord.objects.current()
        current = current.filter(group_id=instance.pk) if reverse else current.filter(user_id=instance.pk)
        instance._cleared_pairs = list(current.values_list("user_id", "group_id"))
    elif action == "post_clear":
        memberships_record(removed=getattr(instance, "_cleared_pairs", []))
    elif action in ("post_add", "post_remove"):
        pairs = [(instance.pk, pk) if not reverse else (pk, instance.pk) for pk in pk_set or ()]
        memberships_record(**{"added" if action == "post_add" else "removed": pairs})


@receiver(post_save, sender=get_user_model())
def user_saved(sender, update_fields=None, **kwargs) -> None:
    # Processes remember who is active per revision (chat handshakes): a save that may change
    # that moves the revision. Saves of other fields alone (last_login at every sign-in) do not.
    if update_fields is not None and "is_active" not in update_fields:
        return
    revision_bump()


@receiver(post_delete, sender=get_user_model())
def user_deleted(sender, **kwargs) -> None:
    # Cached resolutions of a deleted user must not outlive them.
    revision_bump()


@receiver(post_save, sender=ServiceToken)
@receiver(post_delete, sender=ServiceToken)
def token_changed(sender, **kwargs) -> None:
    # Processes keep tokens in memory per token generation: move it, in the change's transaction.
    with transaction.atomic():
        state = locked_state()
        state.token_generation += 1
        # Announced (state.registry_moved) like a revision: open watches re-check their tokens everywhere.
        state.save(update_fields=["token_generation"])


@receiver(setting_changed)
def broadcaster_setting_changed(setting, **kwargs) -> None:
    # A test (or anything) that points the registry at another broadcaster gets it at the next use.
    if setting == "REGISTRY_BROADCASTER":
        broadcaster_reset()
