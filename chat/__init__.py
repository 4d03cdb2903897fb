"""Chat over WebSockets, authenticated only with secrets from the registry."""
