"""Adapters over dependencies (Redis cache, channel layer, consumers): nothing of the domain here."""
