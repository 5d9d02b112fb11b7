"""The HTTP API: app factory, guards, problem+json, access logging."""
