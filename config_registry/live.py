"""Live changes: every committed revision is announced on the channel layer, to every process
sharing it, so that connected consumers (config watch, chat) re-resolve at once."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

REVISIONS_GROUP = "registry.revisions"
REVISION_EVENT = "registry.revision"  # handled by consumers' registry_revision()


def broadcast_revision(sender, revision: int, **kwargs) -> None:
    """Receiver of services.config_changed (sent after commit). A layer that is down must not
    undo or fail a publish that already committed: consumers catch up at the next revision."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        from .selectors import database_position

        position = database_position()  # committed; carries the epoch and token generation along
        async_to_sync(layer.group_send)(REVISIONS_GROUP, {"type": REVISION_EVENT, **position._asdict()})
    except Exception:
        logger.warning("could not announce revision %s on the channel layer", revision, exc_info=True)
