"""Other clients' protocols served over the registry (SPEC §9): thin adapters, errors in each one's shape."""
