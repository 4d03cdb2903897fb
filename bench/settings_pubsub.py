"""bench.settings on channels_redis's RedisPubSubChannelLayer instead of the product's layer, to
compare the two (README, "Idle connections and broadcast"). Needs REDIS_URL."""

from bench.settings import *  # noqa: F403
from project.settings import REDIS_URL

CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
}
