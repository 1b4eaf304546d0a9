"""Reference client strategies, one module each (see harness.clients.registry)."""
