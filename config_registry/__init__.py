"""Config Registry: versioned, encrypted configuration layers resolved per user."""

__version__ = "1.0.0"
