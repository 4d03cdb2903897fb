"""Config Registry: versioned, encrypted configuration layers resolved per user."""
