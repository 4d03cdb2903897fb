"""Following the registry live: the announcement of commits (broadcast), the position feed of request
threads (feed) and the one group membership per process of chat rooms (relay)."""
