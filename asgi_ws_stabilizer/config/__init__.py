"""Configuration: ``settings`` (``StabilizerSettings`` and loading it), ``env`` (the environment
variables' names), ``legacy`` (fastapi-websocket-stabilizer's old settings) and ``origins``."""
